package migrate

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/credbridge/credbridge/translate"
	"github.com/tidwall/gjson"
)

// Sides are the two clouds as the migrate commands read them.
type Sides struct {
	Primary, Secondary Backend
	Users              *UserMap
	// Concurrency bounds the users read at once (each user is one list on
	// each side); the Backends bound their own calls (Limited).
	Concurrency int
	// Progress, when set, is told how many users were read of how many.
	Progress func(done, total int)
}

// UserKeys are one user's keys on both sides, as each side answered.
type UserKeys struct {
	User               string // the primary's id
	Mapped             string // the secondary's id
	Primary, Secondary []translate.Cred
}

// Inventory is every listed user's keys on both sides.
type Inventory struct {
	Users []UserKeys
	// Unmapped are primary users a set user map does not list who hold keys
	// on the primary: nothing of theirs is copied. UnmappedKeys are those keys
	// (so --prune never deletes one that sits on the secondary under a mapped
	// user). A user without keys is not reported.
	Unmapped     []string
	UnmappedKeys []translate.Cred
}

// ReadError is a read that one side did not answer: the commands cannot say
// anything true about the migration without it (exit 2).
type ReadError struct {
	Side, User string
	Status     int
	Err        error
}

func (e *ReadError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: listing the keys of user %q: %v", e.Side, e.User, e.Err)
	}
	return fmt.Sprintf("%s: listing the keys of user %q: answered %d", e.Side, e.User, e.Status)
}

func (e *ReadError) Unwrap() error { return e.Err }

// ReadAll lists the keys of every user on both sides, users in the order given.
func ReadAll(ctx context.Context, s Sides, users []string) (*Inventory, error) {
	inv := &Inventory{}
	var todo []UserKeys
	for _, u := range users {
		me, _ := s.Users.Secondary(u) // unmapped: Mapped "", the primary is read alone
		todo = append(todo, UserKeys{User: u, Mapped: me.Secondary})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		done  int
	)
	parallel(len(todo), max(1, s.Concurrency), func(i int) {
		if ctx.Err() != nil {
			return // a read failed: the rest is not asked for
		}
		err := readUser(ctx, s, &todo[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = err
			cancel()
		}
		done++
		if s.Progress != nil {
			s.Progress(done, len(todo))
		}
	})
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	for _, u := range todo {
		switch {
		case u.Mapped != "":
			inv.Users = append(inv.Users, u)
		case len(u.Primary) > 0:
			inv.Unmapped = append(inv.Unmapped, u.User)
			inv.UnmappedKeys = append(inv.UnmappedKeys, u.Primary...)
		}
	}
	return inv, first
}

// readUser lists one user's keys on both sides (the primary alone for a user
// the map does not list).
func readUser(ctx context.Context, s Sides, u *UserKeys) error {
	var err error
	if u.Primary, err = ListKeys(ctx, s.Primary, "primary", u.User); err != nil || u.Mapped == "" {
		return err
	}
	u.Secondary, err = ListKeys(ctx, s.Secondary, "secondary", u.Mapped)
	return err
}

// ListKeys lists user's access keys on b (Keystone's other credential types
// left out).
func ListKeys(ctx context.Context, b Backend, name, user string) ([]translate.Cred, error) {
	side := b.Side()
	st, body, err := b.Call(ctx, Call{Method: http.MethodGet, Path: translate.BasePath(side), Query: "user_id=" + url.QueryEscape(user)})
	if err != nil || st != http.StatusOK {
		return nil, &ReadError{Side: name, User: user, Status: st, Err: err}
	}
	var out []translate.Cred
	ok := translate.ForEachInList(side, body, func(c translate.Cred) {
		if side.HashIDs() && c.Type != "" && c.Type != "ec2" {
			return
		}
		if c.UserID == "" {
			c.UserID = user
		}
		out = append(out, c.Clone())
	})
	if !ok {
		return nil, &ReadError{Side: name, User: user, Status: st, Err: fmt.Errorf("the answer is not a list of credentials")}
	}
	if paged(body) {
		// Keys past the page would look missing: on the primary's side a key on
		// both reads as secondary-only, which --prune deletes.
		return nil, &ReadError{Side: name, User: user, Status: st, Err: fmt.Errorf("the answer is one page of several (truncated, or a links.next): raise the side's list limit")}
	}
	return out, nil
}

// GetKey reads one key from b by access key; found is false on 404.
func GetKey(ctx context.Context, b Backend, access string) (c translate.Cred, found bool, err error) {
	side := b.Side()
	st, body, err := b.Call(ctx, Call{Method: http.MethodGet, Path: keyPath(side, access)})
	switch {
	case err != nil:
		return c, false, err
	case st == http.StatusNotFound:
		return c, false, nil
	case st != http.StatusOK:
		return c, false, fmt.Errorf("reading key %q: answered %d", access, st)
	}
	if c, found = translate.ParseAnswer(side, body); !found || c.Access != access {
		return c, false, fmt.Errorf("reading key %q: the answer is not that credential", access)
	}
	return c.Clone(), true, nil
}

// paged: a list answer says more keys follow (Keystone's "truncated" under
// list_limit, or a links.next to follow).
func paged(body []byte) bool {
	r := gjson.GetManyBytes(body, "truncated", "links.next")
	return r[0].Bool() || r[1].Type == gjson.String && r[1].Str != ""
}
