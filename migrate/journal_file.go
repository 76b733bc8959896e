package migrate

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketEntries = []byte("entries")

// FileJournal is the embedded journal of one process: a bbolt file whose every
// commit is fsynced, entries keyed by a big-endian sequence so a cursor walks
// them oldest first. Concurrent appends share one commit (bolt.DB.Batch): the
// fsync is paid once per batch, not once per write.
type FileJournal struct {
	db      *bolt.DB
	pending atomic.Int64
	wake    chan struct{}
}

// OpenFile opens (or creates) the journal at path. A second process opening
// the same file waits up to 5 s for bbolt's lock, then fails: one process only.
func OpenFile(path string) (*FileJournal, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	db.MaxBatchDelay = time.Millisecond // a client's create waits at most this for company
	j := &FileJournal{db: db, wake: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err == nil {
			j.pending.Store(int64(b.Stats().KeyN))
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return j, nil
}

// Append stores e durably and returns its id.
func (j *FileJournal) Append(_ context.Context, e Entry) (string, error) {
	raw, err := encodeEntry(e)
	if err != nil {
		return "", err
	}
	var seq uint64
	err = j.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		var err error
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Put(seqKey(seq), raw)
	})
	if err != nil {
		return "", err
	}
	j.pending.Add(1)
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return strconv.FormatUint(seq, 10), nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Next returns up to max of the oldest pending entries, waiting up to wait for
// one when there are none.
func (j *FileJournal) Next(ctx context.Context, max int, wait time.Duration) ([]Entry, error) {
	out, err := j.scan(max)
	if err != nil || len(out) > 0 || wait <= 0 {
		return out, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-j.wake:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return j.scan(max)
}

func (j *FileJournal) scan(max int) ([]Entry, error) {
	var out []Entry
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			e, err := decodeEntry(strconv.FormatUint(binary.BigEndian.Uint64(k), 10), v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// IsHead is always true: one process drains the file, and Next hands it every
// key's entries oldest first, so the worker orders them itself.
func (j *FileJournal) IsHead(context.Context, Entry) (bool, error) { return true, nil }

// Deleted scans the entries after e for a delete of its key.
func (j *FileJournal) Deleted(_ context.Context, e Entry) (bool, error) {
	seq, err := strconv.ParseUint(e.ID, 10, 64)
	if err != nil {
		return false, err
	}
	found := false
	err = j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Seek(seqKey(seq + 1)); k != nil && !found; k, v = c.Next() {
			later, err := decodeEntry("", v)
			if err != nil {
				return err
			}
			found = later.KeyID == e.KeyID && later.Op == "delete"
		}
		return nil
	})
	return found, err
}

// Done removes e.
func (j *FileJournal) Done(_ context.Context, e Entry) error {
	seq, err := strconv.ParseUint(e.ID, 10, 64)
	if err != nil {
		return err
	}
	removed := false
	err = j.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		removed = b.Get(seqKey(seq)) != nil
		return b.Delete(seqKey(seq))
	})
	if err == nil && removed {
		j.pending.Add(-1)
	}
	return err
}

// Stats counts pending entries and reads the oldest one's time.
func (j *FileJournal) Stats(context.Context) (int64, time.Time, error) {
	var oldest time.Time
	err := j.db.View(func(tx *bolt.Tx) error {
		if _, v := tx.Bucket(bucketEntries).Cursor().First(); v != nil {
			e, err := decodeEntry("", v)
			if err != nil {
				return err
			}
			oldest = e.Time()
		}
		return nil
	})
	return j.pending.Load(), oldest, err
}

// Close closes the file.
func (j *FileJournal) Close() error { return j.db.Close() }
