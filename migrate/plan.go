package migrate

import (
	"sort"
	"strings"

	"github.com/credbridge/credbridge/translate"
)

// Endpoint names a side in plan and verify output.
type Endpoint struct {
	Dialect string `json:"dialect"`
	Flavor  string `json:"flavor,omitempty"`
	URL     string `json:"url"`
}

// EndpointOf names b.
func EndpointOf(b Backend) Endpoint {
	s := b.Side()
	e := Endpoint{Dialect: s.DialectName(), URL: b.URL()}
	switch s {
	case translate.SideIBM:
		e.Flavor = "ibm"
	case translate.SideKeystone:
		e.Flavor = "keystone"
	}
	return e
}

// Counts are the keys each side holds for the users read, and how many of
// them agree in every compared field.
type Counts struct {
	Primary   int `json:"primary"`
	Secondary int `json:"secondary"`
	Matched   int `json:"matched"`
}

// Report is `migrate verify`: the full comparison. Its JSON is stable (sorted,
// no times), for a CI gate; secrets appear only as fingerprints.
type Report struct {
	Primary     Endpoint     `json:"primary"`
	Secondary   Endpoint     `json:"secondary"`
	Keys        Counts       `json:"keys"`
	Divergences []Divergence `json:"divergences"`
}

// KeyRef names one key in a plan.
type KeyRef struct {
	Access string `json:"access"`
	Owner  string `json:"owner"`
	// Secret: the primary disclosed the secret, so the key is copied whole.
	Secret bool `json:"secret,omitempty"`
}

// Plan is what `migrate sync` would do, and what it cannot.
type Plan struct {
	Primary   Endpoint `json:"primary"`
	Secondary Endpoint `json:"secondary"`
	Keys      Counts   `json:"keys"`
	// Creates copy a key whole (access, secret, status, description).
	Creates []KeyRef `json:"creates"`
	// NeedsRekey are keys of a primary that never returns a secret (oscred):
	// never created with another secret; their owners rotate them through the
	// bridge while mirror is on.
	NeedsRekey []KeyRef `json:"needs_rekey"`
	// Updates bring status or description to the primary's (one per field).
	Updates []Divergence `json:"updates"`
	// SecondaryOnly are deleted by sync --prune only.
	SecondaryOnly []KeyRef `json:"secondary_only"`
	// Conflicts sync never resolves: another secret, another owner.
	Conflicts     []Divergence `json:"conflicts"`
	UnmappedUsers []string     `json:"unmapped_users"`

	work []userWork
}

// userWork is one user's share of a sync, done in order: prunes free quota
// before creates need it.
type userWork struct {
	prune, create, update []translate.Cred
}

// Actions is how many writes sync would make (prunes only with prune).
func (p *Plan) Actions(prune bool) int {
	n := len(p.Creates) + len(p.updatedKeys())
	if prune {
		n += len(p.SecondaryOnly)
	}
	return n
}

func (p *Plan) updatedKeys() map[string]bool {
	m := map[string]bool{}
	for _, u := range p.Updates {
		m[u.Access] = true
	}
	return m
}

// Converged: nothing left to copy, change or decide.
func (p *Plan) Converged() bool {
	return len(p.Creates)+len(p.NeedsRekey)+len(p.Updates)+len(p.SecondaryOnly)+len(p.Conflicts)+len(p.UnmappedUsers) == 0
}

// Compare reads the inventory into the neutral model and compares each user's
// keys; fp keys the secret fingerprints. Divergences are judged against every
// user's keys (owners): see owners.
func (inv *Inventory) compare(fp Fingerprinter, users *UserMap, each func(u *UserKeys, d Divergence, p translate.Cred, s translate.Cred)) Counts {
	var n Counts
	own := inv.owners(users)
	for i := range inv.Users {
		u := &inv.Users[i]
		pk, sk := neutralKeys(fp, users, u)
		n.Primary += len(pk)
		n.Secondary += len(sk)
		byAK := func(list []translate.Cred) map[string]translate.Cred {
			m := make(map[string]translate.Cred, len(list))
			for _, c := range list {
				m[c.Access] = c
			}
			return m
		}
		pc, sc := byAK(u.Primary), byAK(u.Secondary)
		diverged := map[string]bool{}
		for _, d := range Compare(pk, sk) {
			diverged[d.Access] = true
			if d, ok := own.judge(d); ok {
				each(u, d, pc[d.Access], sc[d.Access])
			}
		}
		for _, k := range pk {
			if _, both := sc[k.Access]; both && !diverged[k.Access] && !own.dup[k.Access] {
				n.Matched++
			}
		}
	}
	return n
}

// owners index every read key by access key across users. Read user by user,
// a key the primary holds for bob but the secondary for alice looks missing
// for bob (a create that "succeeds" on the existing key) and secondary-only
// for alice (which --prune would delete): it is one owner conflict. So is an
// access key the primary lists under two users, or in the list of a user its
// own user_id does not name (a list that lies): never copied to either.
type owners struct {
	primary   map[string][]string // access -> owners (secondary ids) the primary names
	secondary map[string]string   // access -> owner on the secondary
	dup       map[string]bool     // the primary names more than one owner, or lies
	told      map[string]bool     // conflicts already reported
}

func (inv *Inventory) owners(users *UserMap) *owners {
	o := &owners{primary: map[string][]string{}, secondary: map[string]string{}, dup: map[string]bool{}, told: map[string]bool{}}
	for _, u := range inv.Users {
		for _, c := range u.Primary {
			if c.UserID != u.User || len(o.primary[c.Access]) > 0 {
				o.dup[c.Access] = true
			}
			owner := c.UserID
			if me, ok := users.Secondary(c.UserID); ok {
				owner = me.Secondary
			}
			o.primary[c.Access] = append(o.primary[c.Access], owner)
		}
		for _, c := range u.Secondary {
			o.secondary[c.Access] = c.UserID
		}
	}
	for _, c := range inv.UnmappedKeys { // held on the primary: never secondary-only
		o.primary[c.Access] = append(o.primary[c.Access], "unmapped user "+c.UserID)
	}
	return o
}

// judge is d seen against every user's keys; ok is false when d is reported
// elsewhere (another user's share of the same conflict).
func (o *owners) judge(d Divergence) (Divergence, bool) {
	conflict := func(primary string) (Divergence, bool) {
		if o.told[d.Access] {
			return d, false
		}
		o.told[d.Access] = true
		return Divergence{Kind: KindOwner, Access: d.Access, Owner: d.Owner, Primary: primary, Secondary: o.secondary[d.Access]}, true
	}
	p, onPrimary := o.primary[d.Access]
	_, onSecondary := o.secondary[d.Access]
	switch {
	case o.dup[d.Access]:
		return conflict(strings.Join(sortedUnique(p), ","))
	case d.Kind == KindMissingOnSecondary && onSecondary:
		return conflict(d.Owner) // on the secondary, under another user
	case d.Kind == KindMissingOnPrimary && onPrimary:
		return d, false // its primary owner's share reports it
	}
	return d, true
}

func sortedUnique(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func neutralKeys(fp Fingerprinter, users *UserMap, u *UserKeys) (pk, sk []Key) {
	for _, c := range u.Primary {
		owner := u.Mapped
		if me, ok := users.Secondary(c.UserID); ok {
			owner = me.Secondary
		}
		pk = append(pk, fp.Neutral(c, owner))
	}
	for _, c := range u.Secondary {
		sk = append(sk, fp.Neutral(c, c.UserID))
	}
	return pk, sk
}

// Verify is the full comparison of inv.
func (inv *Inventory) Verify(fp Fingerprinter, users *UserMap, primary, secondary Endpoint) Report {
	r := Report{Primary: primary, Secondary: secondary, Divergences: []Divergence{}}
	r.Keys = inv.compare(fp, users, func(_ *UserKeys, d Divergence, p, _ translate.Cred) {
		if d.Kind == KindMissingOnSecondary && p.Secret == "" {
			d.Kind = KindNeedsRekey // missing, and it cannot be copied
		}
		r.Divergences = append(r.Divergences, d)
	})
	for _, u := range inv.Unmapped {
		r.Divergences = append(r.Divergences, Divergence{Kind: KindUnmappedUser, Owner: u})
	}
	sortDivergences(r.Divergences)
	return r
}

// Plan is what sync would do about inv.
func (inv *Inventory) Plan(fp Fingerprinter, users *UserMap, primary, secondary Endpoint) *Plan {
	p := &Plan{Primary: primary, Secondary: secondary, Creates: []KeyRef{}, NeedsRekey: []KeyRef{},
		Updates: []Divergence{}, SecondaryOnly: []KeyRef{}, Conflicts: []Divergence{}, UnmappedUsers: inv.Unmapped}
	if p.UnmappedUsers == nil {
		p.UnmappedUsers = []string{}
	}
	work := map[string]*userWork{}
	of := func(u string) *userWork {
		if work[u] == nil {
			work[u] = &userWork{}
		}
		return work[u]
	}
	p.Keys = inv.compare(fp, users, func(u *UserKeys, d Divergence, pc, sc translate.Cred) {
		w := of(u.User)
		switch d.Kind {
		case KindMissingOnSecondary:
			ref := KeyRef{Access: d.Access, Owner: u.User, Secret: pc.Secret != ""}
			if !ref.Secret {
				p.NeedsRekey = append(p.NeedsRekey, ref)
				return
			}
			p.Creates = append(p.Creates, ref)
			w.create = append(w.create, pc)
		case KindMissingOnPrimary:
			p.SecondaryOnly = append(p.SecondaryOnly, KeyRef{Access: d.Access, Owner: sc.UserID})
			w.prune = append(w.prune, sc)
		case KindStatus, KindDescription:
			p.Updates = append(p.Updates, d)
			if n := len(w.update); n == 0 || w.update[n-1].Access != pc.Access {
				pc.Secret = "" // an update never carries a secret: a differing one is a conflict
				// The target is the primary's description, none included:
				// without this an absent one never clears the secondary's.
				pc.HasDescription = true
				w.update = append(w.update, pc)
			}
		default: // owner, secret: never overwritten
			p.Conflicts = append(p.Conflicts, d)
		}
	})
	users2 := make([]string, 0, len(work))
	for u := range work {
		users2 = append(users2, u)
	}
	sort.Strings(users2)
	for _, u := range users2 {
		p.work = append(p.work, *work[u])
	}
	for _, refs := range [][]KeyRef{p.Creates, p.NeedsRekey, p.SecondaryOnly} {
		sort.SliceStable(refs, func(i, j int) bool { return refs[i].Access < refs[j].Access })
	}
	sortDivergences(p.Updates)
	sortDivergences(p.Conflicts)
	return p
}

// sortDivergences orders by access key, then kind, then owner: the same
// inventory always prints the same.
func sortDivergences(d []Divergence) {
	sort.SliceStable(d, func(i, j int) bool {
		if d[i].Access != d[j].Access {
			return d[i].Access < d[j].Access
		}
		if d[i].Kind != d[j].Kind {
			return d[i].Kind < d[j].Kind
		}
		return d[i].Owner < d[j].Owner
	})
}
