package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/migrate"
	"github.com/schollz/progressbar/v3"
)

// What the migrate commands print. Nothing here ever sees a secret: plans and
// reports carry access keys, owners, field values and fingerprints only.

// shown is s as printed for a person: access keys, owners and descriptions
// come from either cloud, and one holding control characters (a terminal's
// escape sequences) is printed quoted rather than let loose on the terminal.
func shown(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && !unicode.IsPrint(r)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// shownLines is how many lines of each list the human output shows (--json: all).
const shownLines = 20

// progress is a bar on a terminal, a line per tenth otherwise (logs, CI).
type progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	w     io.Writer
	what  string
	total int
	tenth int
}

func newProgress(w io.Writer, what string, total int) *progress {
	p := &progress{w: w, what: what, total: total}
	if isTerminal(w) && total > 0 {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("op"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) set(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Set(done)
		return
	}
	if total > 0 && done*10/total > p.tenth {
		p.tenth = done * 10 / total
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%)\n", p.what, done, total, done*100/total)
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func (m *migration) writeJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(m.o.Stdout, "%s\n", b)
	return err
}

func sideLine(e migrate.Endpoint) string {
	s := e.Dialect
	if e.Flavor != "" {
		s += "/" + e.Flavor
	}
	return s + " " + e.URL
}

func (m *migration) printPlan(p *migrate.Plan) error {
	if m.o.JSON {
		return m.writeJSON(p)
	}
	w := tabwriter.NewWriter(m.o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "primary\t%s\nsecondary\t%s\n", sideLine(p.Primary), sideLine(p.Secondary))
	fmt.Fprintf(w, "users read\t%d\nkeys on primary\t%d\nkeys on secondary\t%d\nmatched\t%d\n",
		len(m.users), p.Keys.Primary, p.Keys.Secondary, p.Keys.Matched)
	fmt.Fprintf(w, "create (key pair copied whole)\t%d\nneeds_rekey (the primary does not disclose the secret)\t%d\n", len(p.Creates), len(p.NeedsRekey))
	fmt.Fprintf(w, "update (status, description)\t%d\nonly on the secondary (deleted by sync --prune only)\t%d\n", len(p.Updates), len(p.SecondaryOnly))
	fmt.Fprintf(w, "conflicts (never overwritten)\t%d\nunmapped users\t%d\n", len(p.Conflicts), len(p.UnmappedUsers))
	_ = w.Flush()
	refs := func(title string, list []migrate.KeyRef) {
		printList(m.o.Stdout, title, jsonLists, len(list), func(i int) string { return keyLine(list[i]) })
	}
	refs("create", p.Creates)
	refs(rekeyTitle, p.NeedsRekey)
	refs("only on the secondary", p.SecondaryOnly)
	printDivergences(m.o.Stdout, "update", p.Updates)
	printDivergences(m.o.Stdout, "conflicts", p.Conflicts)
	for i, u := range p.UnmappedUsers {
		if i == 0 {
			fmt.Fprintln(m.o.Stdout, "unmapped users (not in migration.user_map_file):")
		}
		fmt.Fprintf(m.o.Stdout, "  %s\n", shown(u))
	}
	return nil
}

// What the lists below say of the lines they leave out, and needs_rekey's title.
const (
	jsonLists  = " (--json lists all)"
	rekeyTitle = "needs_rekey: the owner rotates these through the bridge while mode is mirror"
)

// printList prints title and n lines, at most shownLines of them; more
// follows the count of those left out.
func printList(w io.Writer, title, more string, n int, line func(i int) string) {
	for i := 0; i < n; i++ {
		if i == shownLines {
			fmt.Fprintf(w, "  … and %d more%s\n", n-shownLines, more)
			return
		}
		if i == 0 {
			fmt.Fprintf(w, "%s:\n", title)
		}
		fmt.Fprintf(w, "  %s\n", line(i))
	}
}

func keyLine(r migrate.KeyRef) string { return shown(r.Access) + "  owner " + shown(r.Owner) }

func failureLine(f migrate.Failure) string {
	return f.Op + " " + shown(f.Access) + ": " + shown(f.Why)
}

func printDivergences(w io.Writer, title string, list []migrate.Divergence) {
	printList(w, title, jsonLists, len(list), func(i int) string {
		d := list[i]
		line := d.Kind
		if d.Access != "" {
			line += "  " + shown(d.Access)
		}
		if d.Owner != "" {
			line += "  owner " + shown(d.Owner)
		}
		if d.Primary != "" || d.Secondary != "" {
			line += fmt.Sprintf("  primary %q secondary %q", d.Primary, d.Secondary)
		}
		return line
	})
}

func (m *migration) printReport(r migrate.Report) error {
	if m.o.JSON {
		return m.writeJSON(r)
	}
	w := tabwriter.NewWriter(m.o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "primary\t%s\nsecondary\t%s\n", sideLine(r.Primary), sideLine(r.Secondary))
	fmt.Fprintf(w, "keys on primary\t%d\nkeys on secondary\t%d\nmatched\t%d\ndivergences\t%d\n",
		r.Keys.Primary, r.Keys.Secondary, r.Keys.Matched, len(r.Divergences))
	_ = w.Flush()
	printDivergences(m.o.Stdout, "divergences", r.Divergences)
	if len(r.Divergences) == 0 {
		fmt.Fprintln(m.o.Stdout, "verify: both sides agree")
	}
	return nil
}

func printSyncSummary(out io.Writer, p *migrate.Plan, r migrate.SyncResult, prune bool, throttled int64) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "created\t%d\nupdated\t%d\n", r.Created, r.Updated)
	if prune {
		fmt.Fprintf(w, "pruned\t%d\n", r.Pruned)
	} else {
		fmt.Fprintf(w, "only on the secondary (sync --prune deletes them)\t%d\n", len(p.SecondaryOnly))
	}
	if r.Undone > 0 {
		fmt.Fprintf(w, "created, then deleted again (deleted on the primary meanwhile)\t%d\n", r.Undone)
	}
	if r.Resumed > 0 {
		fmt.Fprintf(w, "applied from an interrupted run\t%d\n", r.Resumed)
	}
	fmt.Fprintf(w, "needs_rekey\t%d\nconflicts (never overwritten)\t%d\nunmapped users\t%d\n", len(p.NeedsRekey), len(p.Conflicts), len(p.UnmappedUsers))
	fmt.Fprintf(w, "failed\t%d\nstill journaled (the next sync retries them)\t%d\nthrottled answers waited out (429/503)\t%d\n", len(r.Failed), r.Pending, throttled)
	_ = w.Flush()
	printList(out, "failed", "", len(r.Failed), func(i int) string { return failureLine(r.Failed[i]) })
	printWaiting(out, r.Waiting, r.Pending)
	printDivergences(out, "conflicts", p.Conflicts)
	printList(out, rekeyTitle, " (migrate plan --json lists all)", len(p.NeedsRekey), func(i int) string { return keyLine(p.NeedsRekey[i]) })
}

// migrateStatus asks the running bridge (GET /migration on admin_listen),
// else reads the journal itself, and adds the sync journal's backlog.
func migrateStatus(ctx context.Context, cfg *config.Config, o MigrateOptions) (int, error) {
	mc := cfg.Migration
	fmt.Fprintf(o.Stdout, "mode\t%s\n", mc.Mode)
	st, err := adminStatus(ctx, cfg.AdminListen)
	switch {
	case err == nil:
		fmt.Fprintf(o.Stdout, "bridge\tserving (admin %s), ready: %s\n", cfg.AdminListen, st.Ready)
		if st.Journal != nil {
			fmt.Fprintf(o.Stdout, "journal\t%s: %d pending, oldest %s ago", st.Journal.Kind, st.Journal.Pending, (time.Duration(st.Journal.OldestSeconds) * time.Second).String())
			if st.Journal.LastApplied != "" {
				fmt.Fprintf(o.Stdout, ", last applied %s", st.Journal.LastApplied)
			}
			fmt.Fprintln(o.Stdout)
		}
		for _, f := range st.Failures {
			fmt.Fprintf(o.Stdout, "failure\t%s %s %s: %s\n", shown(f.At), shown(f.Op), shown(f.Access), shown(f.Why))
		}
	case mc.Mode == migrate.ModeMirror:
		fmt.Fprintf(o.Stdout, "bridge\tnot answering on admin_listen %s (%v); reading the journal\n", cfg.AdminListen, err)
		j, jerr := openJournal(cfg)
		if jerr != nil {
			return ExitCannotRun, jerr
		}
		defer j.Close()
		printBacklog(ctx, o.Stdout, "journal", j)
	default:
		fmt.Fprintf(o.Stdout, "bridge\tnot answering on admin_listen %s (%v)\n", cfg.AdminListen, err)
	}
	if _, serr := os.Stat(mc.SyncJournalPath()); serr == nil {
		j, jerr := migrate.OpenFile(mc.SyncJournalPath())
		if jerr != nil {
			return ExitCannotRun, fmt.Errorf("migration.sync_journal: %v (a migrate sync is running?)", jerr)
		}
		defer j.Close()
		printBacklog(ctx, o.Stdout, "sync journal", j)
	}
	return ExitOK, nil
}

func printBacklog(ctx context.Context, w io.Writer, name string, j migrate.Journal) {
	n, oldest, err := j.Stats(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(w, "%s\tunreadable: %v\n", name, err)
	case n == 0:
		fmt.Fprintf(w, "%s\t0 pending\n", name)
	default:
		fmt.Fprintf(w, "%s\t%d pending, oldest %s ago\n", name, n, time.Since(oldest).Truncate(time.Second))
	}
}

// adminStatus reads GET /migration from a bridge serving on addr.
func adminStatus(ctx context.Context, addr string) (*migrate.Status, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/migration", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET /migration answered " + strconv.Itoa(resp.StatusCode) + " (migration off in the serving config?)")
	}
	var st migrate.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// printWaiting lists why writes are still journaled (a secondary's quota, a
// refusal that may pass): each write once, with the last reason it got.
func printWaiting(out io.Writer, waiting []migrate.Failure, pending int) {
	if pending == 0 || len(waiting) == 0 {
		return
	}
	last := map[string]migrate.Failure{}
	var order []string
	for _, w := range waiting {
		k := w.Op + " " + w.Access
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = w
	}
	printList(out, "still journaled", "", len(order), func(i int) string { return failureLine(last[order[i]]) })
}
