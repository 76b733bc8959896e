package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The config's keys are its structs' yaml tags; the YAML decoder and the
// environment overrides both find fields and parse values here, so a value
// means the same and fails with the same words in either place.

var (
	durType           = reflect.TypeOf(time.Duration(0))
	textUnmarshalType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// yamlName is a field's key ("" for none) and whether it is inlined.
func yamlName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return "", false
	}
	if strings.Contains(","+opts+",", ",inline,") {
		return "", true
	}
	if tag == "" {
		tag = strings.ToLower(f.Name) // yaml's own default
	}
	return tag, false
}

// fieldByKey is struct value v's field for key name.
func fieldByKey(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, inline := yamlName(t.Field(i))
		if inline && t.Field(i).Type.Kind() == reflect.Struct {
			if f, ok := fieldByKey(v.Field(i), name); ok {
				return f, true
			}
		}
		if tag != "" && tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// eachKey calls fn for every key below struct value v that holds a value
// rather than more keys, with its dotted path.
func eachKey(v reflect.Value, path string, fn func(path string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, inline := yamlName(t.Field(i))
		f := v.Field(i)
		switch {
		case inline && f.Kind() == reflect.Struct:
			eachKey(f, path, fn)
		case tag == "":
		case isSection(f.Type()):
			eachKey(f, join(path, tag), fn)
		default:
			fn(join(path, tag), f)
		}
	}
}

// isSection: a struct of further keys, not a value that parses itself.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalType)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// setScalar parses s into f by f's type. Its errors name the value, not the
// key: callers prefix that.
func setScalar(f reflect.Value, s string) error {
	if f.CanAddr() && f.Addr().Type().Implements(textUnmarshalType) {
		if err := f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("cannot parse %s: %v", short(s), err)
		}
		return nil
	}
	switch {
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() != reflect.Struct:
		// an optional scalar (migration.sample: unset means its default)
		v := reflect.New(f.Type().Elem())
		if err := setScalar(v.Elem(), s); err != nil {
			return err
		}
		f.Set(v)
	case f.Type() == durType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("cannot parse %s as a duration (e.g. 10s, 1m30s)", short(s))
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() >= reflect.Int && f.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || f.OverflowInt(n) {
			return fmt.Errorf("cannot parse %s as an integer", short(s))
		}
		f.SetInt(n)
	case f.Kind() >= reflect.Uint && f.Kind() <= reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || f.OverflowUint(n) {
			return fmt.Errorf("cannot parse %s as a whole number", short(s))
		}
		f.SetUint(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("cannot parse %s as true or false", short(s))
		}
		f.SetBool(b)
	case f.Kind() == reflect.Float64 || f.Kind() == reflect.Float32:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("cannot parse %s as a number", short(s))
		}
		f.SetFloat(x)
	default:
		return fmt.Errorf("wants a %s, not a single value", kindName(f.Type()))
	}
	return nil
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "mapping"
	}
	return t.String()
}

// short quotes a value for a message, cut at 64 bytes: the value may be
// hostile or huge, and the message reaches a terminal or a log.
func short(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// suggest is the candidate closest to got, if one is close enough to be a
// typo (at most a third of its length in edits, and at most 3).
func suggest(got string, candidates []string) string {
	best, bestD := "", 4
	for _, c := range candidates {
		if d := editDistance(got, c); d < bestD && d*3 <= len(c) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance counts insertions, deletions, substitutions and swaps of two
// neighbours (the usual typos: "moed" is one from "mode").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
