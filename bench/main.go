// Command bench measures mcp_sse against the bridges and SDK servers people
// use today, and against the floor, on loopback, in one run, and prints one
// table. See BENCHMARKS.md at the repository's root.
//
//	cd bench && go run .
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

var hold *time.Duration

type result struct {
	name   string
	lat    *latencyResult
	thr    *throughputResult
	idle   []idleResult
	burst  *burstResult
	mrtr   *latencyResult // one input round per call (ours/sessionless, ours/go-sdk)
	setup  *setupResult
	errors []string
}

func main() {
	only := flag.String("only", "", "comma-separated contenders to run (default: all)")
	latencyCalls := flag.Int("latency-calls", 2000, "sequential calls in the latency scenario")
	mrtrCalls := flag.Int("mrtr-calls", 1000, "sequential calls with one input round each, on ours/sessionless and ours/go-sdk (0: skip)")
	sessions := flag.Int("sessions", 64, "sessions in the throughput scenario")
	calls := flag.Int("calls", 200, "calls per session in the throughput scenario")
	idleFlag := flag.String("idle", "10000,50000", "idle stream counts, comma-separated (empty: skip)")
	burstN := flag.Int("burst", 100000, "notifications in the burst scenario (0: skip)")
	setupN := flag.Int("setup", 64, "sessions in the setup scenario of ours/stdio and supergateway (0: skip)")
	out := flag.String("out", "", "also write the report to this file")
	hold = flag.Duration("hold", 0, "keep idle streams open this long after measuring them (to profile the server)")
	settings := flag.String("settings", "", "more mcp_sse subdirectives for ours, separated by ';' (e.g. 'upstream_listen off')")
	admin := flag.String("admin", "", "give the Caddy under test this admin address (loopback), e.g. to profile it through /debug/pprof")
	godebug := flag.String("godebug", "", "GODEBUG for every server process (default: the runtime's defaults), e.g. adaptivestackstart=0")
	profile := flag.String("profile", "", "write CPU and allocation profiles of the Caddys of ours/* (through their admin endpoints), taken during the latency run (c1) and the throughput run (c64), into this directory")
	profileFor := flag.Duration("profile-for", 5*time.Second, "length of each -profile profile (make the throughput run at least this long with -calls)")
	repeat := flag.Int("repeat", 1, "run everything this many times; with more than one, a table per run and then every ratio across the runs with its median")
	flag.Parse()
	log.SetFlags(log.Ltime)

	names := contenderNames
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	var idleCounts []int
	for _, f := range strings.Split(*idleFlag, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			idleCounts = append(idleCounts, n)
		}
	}

	// Every Go server gets the same runtime settings, ours and the peers.
	if *godebug != "" {
		os.Setenv("GODEBUG", *godebug)
	} else {
		os.Unsetenv("GODEBUG")
	}
	serverGODEBUG = *godebug

	limit := raiseFileLimit()
	e, err := setup()
	if err != nil {
		log.Fatal(err)
	}
	e.admin = *admin
	e.profile, e.profileFor = *profile, max(*profileFor, time.Second)
	e.extra = strings.ReplaceAll(*settings, ";", "\n\t\t")
	log.Printf("open-file limit %d; building in %s", limit, e.dir)

	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	sc := scenarios{idleCounts: idleCounts, sessions: *sessions, calls: *calls, latencyCalls: *latencyCalls, burstN: *burstN, setupN: *setupN, mrtrCalls: *mrtrCalls}
	var runs [][]*result
	for i := range max(*repeat, 1) {
		if *repeat > 1 {
			log.Printf("run %d of %d", i+1, *repeat)
			fmt.Fprintf(w, "## Run %d of %d\n\n", i+1, *repeat)
		}
		results := runAll(e, names, sc)
		report(w, results, sc)
		runs = append(runs, results)
	}
	if len(runs) > 1 {
		summary(w, runs)
	}
}

// scenarios is what each run measures.
type scenarios struct {
	idleCounts                                    []int
	sessions, calls, latencyCalls, burstN, setupN int
	mrtrCalls                                     int
}

// runAll runs every scenario against every contender in turn.
func runAll(e *env, names []string, sc scenarios) []*result {
	var results []*result
	for _, name := range names {
		r := &result{name: name}
		results = append(results, r)
		phase := func(what string, f func(c *contender) error) {
			c, err := e.start(name)
			if err != nil {
				r.errors = append(r.errors, fmt.Sprintf("%s: start: %v", what, err))
				log.Printf("%s %s: start: %v", name, what, err)
				return
			}
			defer c.stop()
			if err := f(c); err != nil {
				r.errors = append(r.errors, fmt.Sprintf("%s: %v", what, err))
				log.Printf("%s %s: %v", name, what, err)
			}
		}
		log.Printf("%s: latency and throughput", name)
		phase("calls", func(c *contender) error {
			lat, err := runLatency(e, c, sc.latencyCalls)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			r.lat = &lat
			thr, err := runThroughput(e, c, sc.sessions, sc.calls)
			if err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			r.thr = &thr
			return nil
		})
		if sc.mrtrCalls > 0 && (name == "ours/sessionless" || name == "ours/go-sdk") {
			log.Printf("%s: %d calls with one input round", name, sc.mrtrCalls)
			phase("mrtr", func(c *contender) error {
				res, err := runMRTR(c, sc.mrtrCalls)
				if err == nil {
					r.mrtr = &res
				}
				return err
			})
		}
		if sc.setupN > 0 && (name == "ours/stdio" || name == "supergateway") {
			log.Printf("%s: setup of %d sessions", name, sc.setupN)
			phase("setup", func(c *contender) error {
				res, err := runSetup(c, sc.setupN)
				if err == nil {
					r.setup = &res
				}
				return err
			})
		}
		for _, n := range sc.idleCounts {
			if name == "direct" || name == "direct/sessionless" || strings.HasPrefix(name, "proxy/") {
				break // no streams to hold open
			}
			if name == "ours/auth" {
				break // its figures are about calls; raw idle streams carry no token
			}
			if clusterBaseline[name] != "" {
				break // the targets of cluster mode are about calls
			}
			log.Printf("%s: %d idle streams", name, n)
			phase(fmt.Sprintf("idle %d", n), func(c *contender) error {
				res, err := runIdle(c, n)
				if res.opened > 0 {
					r.idle = append(r.idle, res)
				}
				return err
			})
		}
		if sc.burstN > 0 && slices.Contains([]string{"ours/go-sdk", "ours/lean", "bare"}, name) {
			log.Printf("%s: burst of %d", name, sc.burstN)
			phase("burst", func(c *contender) error {
				res, err := runBurst(c, sc.burstN)
				if err == nil {
					r.burst = &res
				}
				return err
			})
		}
	}

	return results
}

// setup builds Caddy (from ../cmd/caddy, as users build it) and the servers,
// and installs supergateway with npm.
func setup() (*env, error) {
	dir, err := os.MkdirTemp("", "mcp-sse-bench-")
	if err != nil {
		return nil, err
	}
	here, _ := os.Getwd()
	e := &env{dir: dir, caddy: filepath.Join(dir, "caddy"), servers: filepath.Join(dir, "servers"), nodeDir: filepath.Join(here, "node")}
	steps := [][]string{
		{"go", "build", "-C", "..", "-o", e.caddy, "./cmd/caddy"},
		{"go", "build", "-o", e.servers, "./cmd/servers"},
		{"npm", "ci", "--prefix", e.nodeDir, "--no-audit", "--no-fund", "--loglevel=error"},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return e, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

// serverGODEBUG is the GODEBUG the servers ran with, for the report.
var serverGODEBUG string

func report(w io.Writer, results []*result, sc scenarios) {
	idleCounts, sessions, calls, latencyCalls, burstN := sc.idleCounts, sc.sessions, sc.calls, sc.latencyCalls, sc.burstN
	host, _ := os.Hostname()
	fmt.Fprintf(w, "Run %s on %s: %d cores, %s, %s/%s, Go %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		host, runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "| contender | p50 ms | p99 ms | max ms | calls/s (%d×%d) | p99 ms | errors | CPU-s/1k calls | bridge CPU-s/1k |",
		sessions, calls)
	for _, n := range idleCounts {
		fmt.Fprintf(w, " KiB/stream @%s | open %s s |", kilo(n), kilo(n))
	}
	fmt.Fprintf(w, " alive | burst frames/s |\n|---|---|---|---|---|---|---|---|---|%s---|---|\n", strings.Repeat("---|---|", len(idleCounts)))
	for _, r := range results {
		row := []string{r.name}
		if r.lat != nil {
			row = append(row, ms(r.lat.p50), ms(r.lat.p99), ms(r.lat.max))
		} else {
			row = append(row, "–", "–", "–")
		}
		if t := r.thr; t != nil {
			errs := fmt.Sprint(t.errors)
			if t.errors > 0 {
				errs = fmt.Sprintf("%d (missing %d, dup %d, misrouted %d)", t.errors, t.missing, t.dup, t.mis)
			}
			row = append(row, fmt.Sprintf("%.0f", t.callsPerSec), ms(t.p99), errs,
				fmt.Sprintf("%.3f", t.cpuTree), fmt.Sprintf("%.3f", t.cpuMain))
		} else {
			row = append(row, "–", "–", "–", "–", "–")
		}
		alive := "–"
		for _, n := range idleCounts {
			cell := []string{"–", "–"}
			for _, ir := range r.idle {
				if ir.n == n {
					kib := fmt.Sprintf("%.1f", ir.kibPerSession)
					if ir.kibMain != ir.kibPerSession {
						kib += fmt.Sprintf(" (bridge %.1f)", ir.kibMain)
					}
					if ir.opened < ir.n {
						kib += fmt.Sprintf(" [%d opened]", ir.opened)
					}
					cell = []string{kib, fmt.Sprintf("%.1f", ir.open.Seconds())}
					alive = fmt.Sprintf("%d/%d", ir.alive, ir.checked)
				}
			}
			row = append(row, cell...)
		}
		row = append(row, alive)
		if r.burst != nil {
			row = append(row, fmt.Sprintf("%.0f", r.burst.perSecond))
		} else {
			row = append(row, "–")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintf(w, "\nLatency: 1 session, %d sequential echo calls. Throughput: %d sessions × %d calls, each answer checked for its own token. Burst: %d notifications in one reply. KiB/stream: growth of the resident memory of the whole process tree (ours: Caddy + upstream; supergateway: node + its stdio child) per open stream; \"bridge\" is Caddy alone. CPU-s/1k calls: user+system CPU of the tree during the throughput run. GODEBUG of every server: %q.\n",
		latencyCalls, sessions, calls, burstN, serverGODEBUG)
	for _, r := range results {
		if r.setup != nil {
			fmt.Fprintf(w, "\nSession setup, %s: %d sessions opened one after the other; initialize answered in p50 %s ms, p99 %s ms; %.0f KiB resident per initialized session (process tree, its server process included).\n",
				r.name, r.setup.n, ms(r.setup.p50), ms(r.setup.p99), r.setup.kibSession)
		}
	}
	for _, r := range results {
		if r.thr == nil || r.thr.redis == nil {
			continue
		}
		rr := r.thr.redis
		fmt.Fprintf(w, "\nCluster, %s: streams on instance a, every POST to instance b. Throughput p50 %s ms",
			r.name, ms(r.thr.p50))
		if b := find(results, clusterBaseline[r.name]); b != nil && b.thr != nil {
			fmt.Fprintf(w, " (%s: %s ms)", b.name, ms(b.thr.p50))
		}
		fmt.Fprintf(w, ". Redis per call: %.2f commands sent by the instances, %.2f run in all (scripts' commands included), net of the lease renewals (%.0f commands/s with the sessions open and idle; before taking them off: %.2f sent, %.2f run); by command: %s. Redis CPU-s/1k calls: %.3f.\n",
			rr.sent, rr.executed, rr.background, rr.rawSent, rr.rawExecuted, rr.byCommand(), rr.cpu)
	}
	for _, r := range results {
		if r.lat != nil && r.thr != nil && r.thr.allocs > 0 {
			fmt.Fprintf(w, "\nCaddy's allocations, %s: %.0f per call (%.1f KiB) at 1 session, %.0f per call (%.1f KiB) at %d sessions (runtime.MemStats through the admin endpoint's expvar, the whole process, during the measured calls).\n",
				r.name, r.lat.allocs, r.lat.bytes/1024, r.thr.allocs, r.thr.bytes/1024, sessions)
		}
	}
	ratios(w, results)
	for _, r := range results {
		for _, e := range r.errors {
			fmt.Fprintf(w, "\n- %s: %s", r.name, e)
		}
	}
	fmt.Fprintln(w)
}

func kilo(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func find(results []*result, name string) *result {
	for _, r := range results {
		if r.name == name {
			return r
		}
	}
	return nil
}

// ratios prints the figures the targets are stated in.
// ratio is one figure the issue sets a target for, from one run.
type ratio struct {
	what, unit, target string
	value              float64
}

// ratiosOf computes the targeted figures of one run; a figure whose
// contenders did not run is left out.
func ratiosOf(results []*result) []ratio {
	var out []ratio
	thr := func(name string) float64 {
		if r := find(results, name); r != nil && r.thr != nil {
			return r.thr.callsPerSec
		}
		return 0
	}
	times := func(what string, a, b float64, target string) {
		if a > 0 && b > 0 {
			out = append(out, ratio{what, "×", target, a / b})
		}
	}
	times("ours/lean ÷ mcp-go SSE, calls/s", thr("ours/lean"), thr("mcp-go SSE"), "≥ 1")
	times("ours/go-sdk ÷ direct, calls/s", thr("ours/go-sdk"), thr("direct"), "≥ 0.8")
	times("ours/go-sdk ÷ go-sdk SSE, calls/s", thr("ours/go-sdk"), thr("go-sdk SSE"), "≥ 1")
	times("ours/go-sdk ÷ supergateway, calls/s", thr("ours/go-sdk"), thr("supergateway"), "≥ 5")
	times("ours/sessionless ÷ ours/go-sdk, calls/s", thr("ours/sessionless"), thr("ours/go-sdk"), "≥ 0.9")
	// The sessionless upstream costs more per call than the stateful one on
	// its own; these two separate its share from the bridge's.
	times("ours/sessionless ÷ direct/sessionless, calls/s", thr("ours/sessionless"), thr("direct/sessionless"), "for orientation: ≥ ours/go-sdk ÷ direct")
	times("direct/sessionless ÷ direct, calls/s (the upstream alone)", thr("direct/sessionless"), thr("direct"), "for orientation")
	bridgeCPU := func(name string) float64 {
		if r := find(results, name); r != nil && r.thr != nil {
			return r.thr.cpuMain
		}
		return 0
	}
	times("bridge CPU per call, ours/sessionless ÷ ours/go-sdk", bridgeCPU("ours/sessionless"), bridgeCPU("ours/go-sdk"), "for orientation")
	times("ours/stdio ÷ supergateway, calls/s", thr("ours/stdio"), thr("supergateway"), "≥ 10")
	times("ours/lean ÷ bare, calls/s", thr("ours/lean"), thr("bare"), "for orientation")
	times("ours/auth ÷ ours/lean, calls/s (mcp_auth in front)", thr("ours/auth"), thr("ours/lean"), "for orientation")
	if o, d := find(results, "ours/go-sdk"), find(results, "direct"); o != nil && d != nil && o.lat != nil && d.lat != nil {
		out = append(out,
			ratio{"p99 added over direct at 1 session", " ms", "≤ 1 ms", float64((o.lat.p99 - d.lat.p99).Microseconds()) / 1000},
			ratio{"p50 added over direct at 1 session", " ms", "≤ 0.25 ms", float64((o.lat.p50 - d.lat.p50).Microseconds()) / 1000})
	}
	times("ours/go-sdk ÷ proxy/go-sdk (reverse_proxy alone), calls/s", thr("ours/go-sdk"), thr("proxy/go-sdk"), "for orientation")
	for _, pair := range [][2]string{{"proxy/go-sdk", "direct"}, {"ours/go-sdk", "proxy/go-sdk"}, {"ours/lean", "proxy/lean"}} {
		if o, d := find(results, pair[0]), find(results, pair[1]); o != nil && d != nil && o.lat != nil && d.lat != nil {
			out = append(out, ratio{"p50 added by " + pair[0] + " over " + pair[1] + " at 1 session", " ms", "for orientation", float64((o.lat.p50 - d.lat.p50).Microseconds()) / 1000})
		}
	}
	if o, d := find(results, "ours/sessionless"), find(results, "direct/sessionless"); o != nil && d != nil && o.lat != nil && d.lat != nil {
		out = append(out, ratio{"p50 added by ours/sessionless over direct/sessionless at 1 session", " ms", "for orientation", float64((o.lat.p50 - d.lat.p50).Microseconds()) / 1000})
	}
	for _, name := range []string{"ours/sessionless", "ours/go-sdk"} {
		if r := find(results, name); r != nil && r.mrtr != nil && r.lat != nil {
			out = append(out, ratio{name + ": p50 an input round adds (confirm − echo)", " ms", "≤ 1 ms",
				float64((r.mrtr.p50 - r.lat.p50).Microseconds()) / 1000})
		}
	}
	for _, name := range []string{"ours/cluster", "ours/cluster/go-sdk"} {
		c, b := find(results, name), find(results, clusterBaseline[name])
		if c == nil || b == nil {
			continue
		}
		times(name+" ÷ "+b.name+", calls/s", thr(name), thr(b.name), "≥ 0.7")
		if c.lat != nil && b.lat != nil {
			out = append(out, ratio{"p50 added by " + name + " over " + b.name + " at 1 session", " ms", "≤ 0.5 ms",
				float64((c.lat.p50 - b.lat.p50).Microseconds()) / 1000})
		}
		if c.thr != nil && b.thr != nil {
			out = append(out, ratio{"p50 added by " + name + " over " + b.name + " under load (throughput run)", " ms", "for orientation",
				float64((c.thr.p50 - b.thr.p50).Microseconds()) / 1000})
			out = append(out, ratio{"errors, " + name, "count", "0", float64(c.thr.errors)})
		}
		if c.thr != nil && c.thr.redis != nil {
			out = append(out, ratio{"Redis commands sent per call, " + name, " per call", "for orientation", c.thr.redis.sent})
		}
	}
	if o := find(results, "ours/lean"); o != nil && o.thr != nil {
		out = append(out, ratio{"Caddy CPU-s per 1,000 calls, ours/lean", "", "≤ 0.1", o.thr.cpuMain})
		if b := find(results, "bare"); b != nil && b.thr != nil && b.thr.cpuTree > 0 {
			times("Caddy CPU per call, ours/lean ÷ bare's whole server CPU", o.thr.cpuMain, b.thr.cpuTree, "≤ 2.5")
		}
		if p := find(results, "proxy/lean"); p != nil && p.thr != nil && p.thr.cpuMain > 0 {
			times("Caddy CPU per call, ours/lean ÷ proxy/lean's Caddy (reverse_proxy alone)", o.thr.cpuMain, p.thr.cpuMain, "for orientation")
		}
	}
	for _, name := range []string{"ours/lean", "proxy/lean", "ours/go-sdk", "proxy/go-sdk", "ours/sessionless"} {
		if o := find(results, name); o != nil && o.thr != nil && o.thr.allocs > 0 {
			out = append(out, ratio{"Caddy allocations per call at 64 sessions, " + name, " allocs", "for orientation", o.thr.allocs})
		}
	}
	if o := find(results, "ours/lean"); o != nil && len(o.idle) > 0 {
		out = append(out, ratio{fmt.Sprintf("KiB per idle stream @%s, ours/lean", kilo(o.idle[0].n)), " KiB", "≤ 32", o.idle[0].kibPerSession})
	}
	if o, b := find(results, "ours/lean"), find(results, "bare"); o != nil && b != nil && o.burst != nil && b.burst != nil {
		times("burst frames/s, ours/lean ÷ bare", o.burst.perSecond, b.burst.perSecond, "≥ 0.8")
	}
	return out
}

func (r ratio) format(v float64) string {
	switch r.unit {
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "":
		return fmt.Sprintf("%.3f", v)
	case "count":
		return fmt.Sprintf("%.0f", v)
	case " KiB":
		return fmt.Sprintf("%.1f KiB", v)
	case " allocs":
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f%s", v, r.unit)
	}
}

func ratios(w io.Writer, results []*result) {
	fmt.Fprintf(w, "\nRatios:")
	for _, r := range ratiosOf(results) {
		fmt.Fprintf(w, "\n- %s: %s (target %s)", r.what, r.format(r.value), r.target)
	}
	fmt.Fprintln(w)
}

// summary prints every figure of ratiosOf across the runs, in run order,
// and its median: on a shared machine one run's ratio moves by a third.
func summary(w io.Writer, runs [][]*result) {
	fmt.Fprintf(w, "\n## Across %d runs\n\n| figure | target | median | each run |\n|---|---|---|---|\n", len(runs))
	var order []string
	byWhat := map[string][]float64{}
	proto := map[string]ratio{}
	for _, results := range runs {
		for _, r := range ratiosOf(results) {
			if _, seen := proto[r.what]; !seen {
				order = append(order, r.what)
				proto[r.what] = r
			}
			byWhat[r.what] = append(byWhat[r.what], r.value)
		}
	}
	for _, what := range order {
		r, vals := proto[what], byWhat[what]
		each := make([]string, len(vals))
		for i, v := range vals {
			each[i] = r.format(v)
		}
		sorted := slices.Sorted(slices.Values(vals))
		median := sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", what, r.target, r.format(median), strings.Join(each, ", "))
	}
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? memory"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return fmt.Sprintf("%.1f GiB", kb/1024/1024)
		}
	}
	return "? memory"
}
