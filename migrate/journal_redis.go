package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis names. The per-key lists hold the stream ids of one key's pending
// entries in order; only the head of a list may apply, whichever replica holds it.
const (
	redisStream = "credbridge:migration:journal"
	redisGroup  = "credbridge"
	redisKeyPfx = "credbridge:migration:key:"
)

// appendScript adds the entry and queues its id behind its key's, atomically.
var appendScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('RPUSH', KEYS[2], id)
return id`)

// doneScript acknowledges, deletes and dequeues an entry, atomically.
var doneScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('LREM', KEYS[2], 1, ARGV[2])
return 1`)

// RedisJournal is a Redis Stream read by a consumer group, so several bridge
// replicas drain one journal: each entry is delivered to one consumer; one whose
// consumer died is claimed by another after ClaimIdle (XAUTOCLAIM).
type RedisJournal struct {
	rdb       redis.UniversalClient
	consumer  string
	ClaimIdle time.Duration
	lastClaim atomic.Int64
	owned     bool
}

// OpenRedis uses the Redis at url (cache.redis_url).
func OpenRedis(ctx context.Context, url string) (*RedisJournal, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("cache.redis_url: not a Redis URL")
	}
	return NewRedisJournal(ctx, redis.NewClient(opt), true)
}

// NewRedisJournal uses rdb; owned says whether Close closes it.
func NewRedisJournal(ctx context.Context, rdb redis.UniversalClient, owned bool) (*RedisJournal, error) {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	j := &RedisJournal{rdb: rdb, owned: owned, ClaimIdle: 30 * time.Second,
		consumer: host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])}
	if err := j.ensureGroup(ctx); err != nil {
		if owned {
			rdb.Close()
		}
		return nil, err
	}
	return j, nil
}

// ensureGroup creates the group (and stream) unless it exists; Redis restarted
// empty loses it, so it is also redone when a read says NOGROUP.
func (j *RedisJournal) ensureGroup(ctx context.Context) error {
	err := j.rdb.XGroupCreateMkStream(ctx, redisStream, redisGroup, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// Append adds e to the stream.
func (j *RedisJournal) Append(ctx context.Context, e Entry) (string, error) {
	raw, err := encodeEntry(e)
	if err != nil {
		return "", err
	}
	return appendScript.Run(ctx, j.rdb, []string{redisStream, redisKeyPfx + e.KeyID}, raw).Text()
}

// Next returns this consumer's pending entries, stale ones of dead consumers,
// and new ones (waiting up to wait only when it has nothing).
func (j *RedisJournal) Next(ctx context.Context, max int, wait time.Duration) ([]Entry, error) {
	out, err := j.read(ctx, "0", max, -1)
	if err != nil {
		return nil, err
	}
	if now := time.Now().UnixNano(); now-j.lastClaim.Load() > int64(time.Second) {
		j.lastClaim.Store(now)
		msgs, _, err := j.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: redisStream, Group: redisGroup,
			Consumer: j.consumer, MinIdle: j.ClaimIdle, Start: "0-0", Count: int64(max)}).Result()
		if err == nil {
			out = j.appendMsgs(ctx, out, msgs)
		}
	}
	if len(out) >= max {
		return out, nil
	}
	block := time.Duration(-1)
	if len(out) == 0 && wait > 0 {
		block = wait
	}
	fresh, err := j.read(ctx, ">", max-len(out), block)
	return append(out, fresh...), err
}

func (j *RedisJournal) read(ctx context.Context, from string, max int, block time.Duration) ([]Entry, error) {
	res, err := j.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: redisGroup, Consumer: j.consumer,
		Streams: []string{redisStream, from}, Count: int64(max), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "NOGROUP") {
			_ = j.ensureGroup(ctx)
		}
		return nil, err
	}
	var out []Entry
	for _, s := range res {
		out = j.appendMsgs(ctx, out, s.Messages)
	}
	return out, nil
}

// appendMsgs decodes stream messages; a message deleted while pending (no
// fields) or unreadable is acknowledged away, never applied.
func (j *RedisJournal) appendMsgs(ctx context.Context, out []Entry, msgs []redis.XMessage) []Entry {
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		e, err := decodeEntry(m.ID, []byte(raw))
		if raw == "" || err != nil {
			j.rdb.XAck(ctx, redisStream, redisGroup, m.ID)
			continue
		}
		out = append(out, e)
	}
	return out
}

// IsHead reads the head of e's key list.
func (j *RedisJournal) IsHead(ctx context.Context, e Entry) (bool, error) {
	head, err := j.rdb.LIndex(ctx, redisKeyPfx+e.KeyID, 0).Result()
	if errors.Is(err, redis.Nil) {
		return true, nil // the list is gone (Redis lost it): nothing older is known
	}
	return head == e.ID, err
}

// Deleted reads the entries queued behind e on its key's list.
func (j *RedisJournal) Deleted(ctx context.Context, e Entry) (bool, error) {
	ids, err := j.rdb.LRange(ctx, redisKeyPfx+e.KeyID, 0, -1).Result()
	if err != nil {
		return false, err
	}
	after := false
	for _, id := range ids {
		if !after {
			after = id == e.ID
			continue
		}
		msgs, err := j.rdb.XRangeN(ctx, redisStream, id, id, 1).Result()
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			raw, _ := m.Values["e"].(string)
			if later, err := decodeEntry(id, []byte(raw)); err == nil && later.Op == "delete" {
				return true, nil
			}
		}
	}
	return false, nil
}

// Done acknowledges and removes e.
func (j *RedisJournal) Done(ctx context.Context, e Entry) error {
	return doneScript.Run(ctx, j.rdb, []string{redisStream, redisKeyPfx + e.KeyID}, redisGroup, e.ID).Err()
}

// Stats: the stream's length (entries are deleted once applied) and the
// oldest id's time.
func (j *RedisJournal) Stats(ctx context.Context) (int64, time.Time, error) {
	n, err := j.rdb.XLen(ctx, redisStream).Result()
	if err != nil {
		return 0, time.Time{}, err
	}
	msgs, err := j.rdb.XRangeN(ctx, redisStream, "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return n, time.Time{}, err
	}
	ms, _ := strconv.ParseInt(strings.SplitN(msgs[0].ID, "-", 2)[0], 10, 64)
	return n, time.UnixMilli(ms), nil
}

// Close closes the client when the journal opened it.
func (j *RedisJournal) Close() error {
	if j.owned {
		return j.rdb.Close()
	}
	return nil
}
