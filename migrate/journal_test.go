package migrate

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/credbridge/credbridge/internal/testing/redistest"
	"github.com/redis/go-redis/v9"
)

// journals runs fn against each backend, each on real storage.
func journals(t *testing.T, fn func(t *testing.T, open func() Journal)) {
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		fn(t, func() Journal {
			j, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return j
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		fn(t, func() Journal {
			opt, _ := redis.ParseURL(srv.URL())
			j, err := NewRedisJournal(context.Background(), redis.NewClient(opt), true)
			if err != nil {
				t.Fatal(err)
			}
			return j
		})
	})
}

// TestJournalOrderAndReopen: entries come back oldest first, survive a
// close and reopen, and leave only when done.
func TestJournalOrderAndReopen(t *testing.T) {
	journals(t, func(t *testing.T, open func() Journal) {
		ctx := context.Background()
		j := open()
		for i, op := range []string{"create", "update", "delete"} {
			if _, err := j.Append(ctx, Entry{Op: op, Access: "AK1", KeyID: KeyID("AK1", ""), At: int64(1000 + i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := j.Append(ctx, Entry{Op: "create", Access: "AK2", KeyID: KeyID("AK2", ""), At: 2000}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		j = open()
		defer j.Close()
		got, err := j.Next(ctx, 10, time.Second)
		if err != nil || len(got) != 4 {
			t.Fatalf("next: %d entries, %v", len(got), err)
		}
		if got[0].Op != "create" || got[1].Op != "update" || got[2].Op != "delete" || got[3].Access != "AK2" {
			t.Fatalf("order: %+v", got)
		}
		if gone, err := j.Deleted(ctx, got[0]); err != nil || !gone {
			t.Fatalf("AK1's create does not see its later delete (%v)", err)
		}
		if gone, _ := j.Deleted(ctx, got[3]); gone {
			t.Fatal("AK2's create reported deleted")
		}
		if head, _ := j.IsHead(ctx, got[0]); !head {
			t.Fatal("the first entry of AK1 is not its head")
		}
		n, oldest, err := j.Stats(ctx)
		if err != nil || n != 4 || oldest.IsZero() {
			t.Fatalf("stats %d %v %v", n, oldest, err)
		}
		for _, e := range got {
			if err := j.Done(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if n, _, _ := j.Stats(ctx); n != 0 {
			t.Fatalf("%d pending after done", n)
		}
		if again, _ := j.Next(ctx, 10, 10*time.Millisecond); len(again) != 0 {
			t.Fatalf("done entries given again: %+v", again)
		}
	})
}

// TestRedisJournalPerKeyOrderAcrossConsumers: two consumers split the
// stream; the one holding a key's later entry waits for the earlier one;
// entries of a consumer that died are claimed by the other.
func TestRedisJournalPerKeyOrderAcrossConsumers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	open := func() *RedisJournal {
		opt, _ := redis.ParseURL(srv.URL())
		j, err := NewRedisJournal(ctx, redis.NewClient(opt), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j
	}
	a, b := open(), open()
	kid := KeyID("AK1", "")
	for _, op := range []string{"create", "delete"} {
		if _, err := a.Append(ctx, Entry{Op: op, Access: "AK1", KeyID: kid, At: time.Now().UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := a.Next(ctx, 1, 0) // a takes the create and dies
	if err != nil || len(first) != 1 || first[0].Op != "create" {
		t.Fatalf("a: %+v %v", first, err)
	}
	second, err := b.Next(ctx, 10, 0)
	if err != nil || len(second) != 1 || second[0].Op != "delete" {
		t.Fatalf("b: %+v %v", second, err)
	}
	if head, _ := b.IsHead(ctx, second[0]); head {
		t.Fatal("the delete may apply before the create")
	}
	b.ClaimIdle = 50 * time.Millisecond
	time.Sleep(60 * time.Millisecond)
	b.lastClaim.Store(0)
	got, err := b.Next(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var create *Entry
	for i := range got {
		if got[i].Op == "create" {
			create = &got[i]
		}
	}
	if create == nil {
		t.Fatalf("the dead consumer's create was not claimed: %+v", got)
	}
	if head, _ := b.IsHead(ctx, *create); !head {
		t.Fatal("the claimed create is not the head")
	}
	if err := b.Done(ctx, *create); err != nil {
		t.Fatal(err)
	}
	if head, _ := b.IsHead(ctx, second[0]); !head {
		t.Fatal("the delete did not become the head once the create was done")
	}
}
