package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

var header = []string{"scenario", "parameters", "volt", "baseline (same run)", "volt ÷ baseline", "target (performance.md §6)"}

func (r Row) cells() []string {
	return []string{r.Scenario, r.Params, r.Volt, r.Baseline, r.ratioText(), r.Target}
}

func (r Row) ratioText() string {
	if r.Ratio == 0 {
		return "–"
	}
	s := fmt.Sprintf("%.2f× (%s)", r.Ratio, r.RatioOf)
	for _, x := range r.MoreRatios {
		s += fmt.Sprintf("; %.2f× (%s)", x.Value, x.Of)
	}
	return s
}

// WriteTable prints rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	return tw.Flush()
}

// Markdown renders a report, with how it was run (command); plotFiles
// names the PNG of each plot (by Plot.Name) to embed.
func Markdown(rep *Report, command string, plotFiles map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# volt bench, %s mode, %s\n\n", rep.Mode, rep.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Run with `%s`; took %s.\n\n", command, rep.Elapsed.Round(time.Second))
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rep.Rows {
		b.WriteString("| " + strings.Join(escapeCells(r.cells()), " | ") + " |\n")
	}
	if len(plotFiles) > 0 {
		b.WriteString("\n## Sweeps\n\nLog-log axes; dashed lines are targets of performance.md §6, thin lines baselines of this run.\n\n")
		for _, p := range rep.Plots {
			if f, ok := plotFiles[p.Name]; ok {
				fmt.Fprintf(&b, "![%s](%s)\n\n", p.Title, f)
			}
		}
	}
	b.WriteString("\n## CPU per scenario\n\n| scenario | wall | volt serve CPU | bench process CPU | Postgres CPU |\n|---|---|---|---|---|\n")
	for _, p := range rep.Phases {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", p.Name, p.Wall.Round(time.Millisecond), formatCPU(p.ServerCPU),
			formatCPU(p.ClientCPU), formatCPU(p.PGCPU))
	}
	b.WriteString("\n## Machine\n\n")
	for _, l := range rep.Machine.lines() {
		b.WriteString("- " + l + "\n")
	}
	b.WriteString("\n## How it ran\n\n")
	for _, l := range append(rep.Settings, notes...) {
		b.WriteString("- " + l + "\n")
	}
	return b.String()
}

// notes explain what the figures mean.
var notes = []string{
	"Every figure comes from this one run; the baselines ran against the same Postgres on the same machine.",
	"Latencies run from COMMIT returning (autocommit INSERT … RETURNING id) to the client having read the response; a receipt racing ahead of the COMMIT acknowledgement counts as 0. The LISTEN/NOTIFY floor row (for volt too) and S5 are timed from sending the INSERT instead, because the notification, and often volt's response, arrive before COMMIT returns.",
	"S1 clients count rows by the insert headers in each body rather than decoding JSON, as the COPY baseline counts bytes; both read into this process over loopback.",
	"S4 creates the N shapes with offset=-1 requests, then commits one row at a time into the followed shape (owner_id = 0), 10 ms apart so its long poll is parked again.",
	"S5 opens one TCP connection per client, waits until every long poll is written plus 200 ms + 0.1 ms per client, then inserts one row; 3 rounds, all receipts pooled. The server has no parked-request signal, so on a loaded machine some polls may still be on their way in when the row commits; that inflates large-C figures.",
	"S10 writers each have their own client_id and seq, and insert one row per transaction into s10_items with owner = the writer's name. Round trip: each writer follows its own live shape (owner = '<writer>', long polls following electric-offset and cursor) and times from sending the POST to the response that carries the row; it sends the next POST only then, so writes/s is what W closed-loop writers sustain, not a maximum. POST alone: the same writers without shapes, timed to the answer. Baseline: W goroutines, one pgx connection each, autocommit single-row INSERTs into s10_plain (same schema, in no shape). Every writer makes one untimed write first; volt serve's pgx pool keeps its default size (VOLT_DB_POOL_SIZE, 20 connections) for the endpoint and snapshots alike.",
	"S4 vs naive poller: N goroutines (owner_id = 0..N-1), each re-running its shape's full query (`SELECT id, owner_id, name, title, status, priority … WHERE owner_id = k`) every 100 ms on a 16-connection pgx pool, spread over the interval; the poller of owner_id = 0 reports ids it has not seen, and the same commits as S4 are timed to it. Postgres CPU is the postmaster's and its backends' utime+stime over the commits (cores = CPU seconds ÷ wall seconds), for volt's S4 commits and for the poller alike.",
	"S5 vs LISTEN/NOTIFY: C pgx connections LISTEN on a channel an AFTER INSERT trigger pg_notify's; one row per round, 3 rounds, each receipt timed from sending the INSERT as in S5. Above 1 000 listeners it is not run (one Postgres backend each).",
	"S8: 8 writers on their own pgx connections commit single-row INSERTs into s8_items, paced open-loop at the target rate (max: back to back) for the stated time. About 50 commits/s go to owner_id = 0, which one client follows live; the rest spread over the other N-1 shapes, so every commit matches one shape. commit→client is from COMMIT returning to that client's response. volt has no commit→log probe, so commit→client stands in for it (an upper bound). Slot lag is sampled every 100 ms: confirmed = pg_current_wal_lsn − confirmed_flush_lsn (volt acknowledges every 10 s, its status interval, so this reads up to 10 s of WAL), sent = pg_current_wal_lsn − the walsender's sent_lsn. Drained = from the writers stopping to the last probe arriving. The 'without volt' baseline runs before and after the phases with volt, with volt stopped and its slot dropped; the ratio is against the better of the two (the machine's load drifts).",
	"S8 decoding limit: a pgoutput slot of the bench's own is created before S8's first insert; after the last phase pg_recvlogical (from the Postgres bin dir, -F 0, --endpos = the then-current LSN) streams it to /dev/null and is timed from exec to exit. Every S8 insert is one transaction, so tx/s = S8's inserts ÷ that time (it includes pg_recvlogical's start-up).",
	"S11: memory per idle shape and per parked poll are VmRSS differences (1 s after the last shape request; with the polls parked); restart-to-ready sends SIGTERM, waits for exit, starts volt serve on the same storage dir, slot and publication, and times from exec to /v1/health reporting active, then to the response of an offset=-1 request for an existing shape; 'same handle' says whether that shape survived the restart. The baseline is the same restart with one shape.",
	"S2: each client count gets a new shape of the same 500 rows (`where id > -C`), so every step starts cold; C goroutines, each on its own connection, wait at a gate, then all request offset=-1 and follow electric-offset to up-to-date; times run from opening the gate. Shapes made for them: distinct electric-handle values the clients ended on, new shape directories under the storage dir, and the shape count of GET /v1/stats when the server has that endpoint. Baseline: the same with C = 1.",
	"S3: N shapes `owner_id = k` over s3_items (500 rows per owner, stored owner by owner, indexed on owner_id); each N runs on a fresh volt serve (empty storage). 64 goroutines share an HTTP client and take the next k; each follows its shape from offset=-1 to up-to-date and checks 500 rows. A 503 is retried after its retry-after (seconds or HTTP date; 50 ms to 10 s, 100 ms when absent); other answers and transport errors count as failures. Baseline: the same N `SELECT … WHERE owner_id = k`, 64 at a time, on 64 pgx connections opened beforehand, run just before volt's step.",
	"S12: volt serve restarts with -chunk-bytes twice the body, so the whole snapshot is one response, and with -stall-timeout 5s when `volt serve -h` lists that flag. One normal client reads the shape first (the snapshot is on disk); 1 s later the idle VmRSS and open files are taken (the baseline). Each stalled client dials with a 4 KB SO_RCVBUF, sends the GET, reads the 12-byte status prefix and never reads again. VmRSS and the server's open files are then sampled every 100 ms; pinned bytes per client = (peak − idle) ÷ clients; the server has dropped them when its open files are back to the idle count. A /v1/health request 1 s into the stall shows whether the server still answers.",
	"S13: both shapes are created (synced once) before the updates. (a) one UPDATE transaction per update of row 1; (b) every row updated `rounds` times in 1 000-row transactions; the last update of each writes a marker, and fresh clients (offset=-1, following electric-offset to up-to-date, non-live) are repeated until one sees it. Messages are counted by their \"operation\" headers, bytes are the response bodies. Then the live state is read through a new shape of the same rows (`where id > 0`, the baseline), and the old shape is downloaded again every second for up to the compaction wait (quick 5 s, full 10 s) unless already within 2× the live bytes; the smallest download is reported. Log on disk: per-shape bytes of GET /v1/stats when the server has it, else the shape's directory under the storage dir.",
	"RSS figures are the server's VmRSS (/proc/<pid>/status) differences, so they are approximate.",
	"-cpuprofile profiles the bench process (the load clients), not the server; attach `perf record -g -p <pid>` (the pid is in the progress output) for volt serve.",
	"FAILED rows name their reason; volt serve opens shape logs on demand (at most -max-open-logs, 2 files each), so no size is refused for want of file descriptors.",
}

func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}

// WriteResults writes the report to dir/<date>-<mode>.md (with -2, -3, …
// when that exists) and returns the path.
func WriteResults(dir string, rep *Report, command string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create results dir: %w", err)
	}
	base := rep.Started.Format("2006-01-02") + "-" + rep.Mode
	path := filepath.Join(dir, base+".md")
	for i := 2; fileExists(path); i++ {
		path = filepath.Join(dir, fmt.Sprintf("%s-%d.md", base, i))
	}
	stem := strings.TrimSuffix(filepath.Base(path), ".md")
	files := map[string]string{}
	for _, p := range rep.Plots {
		img, err := p.PNG()
		if err != nil {
			return "", err
		}
		name := stem + "-" + p.Name + ".png"
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			return "", fmt.Errorf("write plot: %w", err)
		}
		files[p.Name] = name
	}
	if err := os.WriteFile(path, []byte(Markdown(rep, command, files)), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return path, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
