package migrate

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	p := []Key{
		{Access: "A", Owner: "u", Status: "active", FP: "f1"},
		{Access: "B", Owner: "u", Status: "active", Description: "x", FP: "f2"},
		{Access: "C", Owner: "u", Status: "active"},
	}
	s := []Key{
		{Access: "A", Owner: "u", Status: "active"}, // no secret disclosed: not compared
		{Access: "B", Owner: "v", Status: "inactive", Description: "y", FP: "f3"},
		{Access: "D", Owner: "u", Status: "active"},
	}
	got := Compare(p, s)
	var kinds []string
	for _, d := range got {
		kinds = append(kinds, d.Access+":"+d.Kind)
	}
	want := []string{"B:owner", "B:status", "B:description", "B:secret", "C:missing_on_secondary", "D:missing_on_primary"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("got %v, want %v", kinds, want)
	}
	if len(Compare(p[:1], s[:1])) != 0 {
		t.Fatal("equal keys diverged")
	}
}

func TestSealer(t *testing.T) {
	key := []byte(strings.Repeat("j", 32))
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal("AK1", "the-secret")
	if bytes.Contains(sealed, []byte("the-secret")) {
		t.Fatal("secret in clear")
	}
	if got, err := s.Open("AK1", sealed); err != nil || got != "the-secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open("AK2", sealed); err == nil {
		t.Fatal("a secret sealed for AK1 opened for AK2")
	}
	other, _ := NewSealer([]byte(strings.Repeat("x", 32)))
	if _, err := other.Open("AK1", sealed); err == nil {
		t.Fatal("opened with another key")
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
	if fp := s.FP.Of("the-secret"); len(fp) != 16 || fp == other.FP.Of("the-secret") || strings.Contains(fp, "secret") {
		t.Fatalf("fingerprint %q: want 16 hex keyed by the journal key", fp)
	}
}
