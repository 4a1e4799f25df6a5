package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// callTimeout is how long one call may take before it counts as missing.
const callTimeout = 10 * time.Second

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (l latencies) max() time.Duration { return slices.Max(l) }

func openSession(c *contender, errs *counters) (session, error) {
	if !c.sse {
		return &streamableSession{url: c.url, modern: c.modern}, nil
	}
	return openSSE(c.url, c.postHost, c.authorization, errs)
}

// echo calls the echo tool with a token only this call uses and checks
// that the answer carries it.
func echo(ctx context.Context, s session, id int64, errs *counters) (time.Duration, bool) {
	token := fmt.Sprintf("tok-%d", id)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	start := time.Now()
	r, err := s.call(ctx, id, "tools/call", fmt.Sprintf(`{"name":"echo","arguments":{"text":%q}}`, token))
	took := time.Since(start)
	switch {
	case err != nil && ctx.Err() != nil:
		errs.missing.Add(1)
	case err != nil || r.Error != nil:
		errs.failed.Add(1)
	case r.text() != token:
		errs.misrouted.Add(1)
	default:
		return took, true
	}
	return took, false
}

type latencyResult struct {
	p50, p99, max time.Duration
	errors        int64
	// allocs and bytes: what Caddy allocated per call (ours only).
	allocs, bytes float64
}

// runLatency: one session, n sequential echo calls.
func runLatency(e *env, c *contender, n int) (latencyResult, error) {
	var errs counters
	s, err := openSession(c, &errs)
	if err != nil {
		return latencyResult{}, err
	}
	defer s.close()
	ctx := context.Background()
	if err := handshake(ctx, s, 1); err != nil {
		return latencyResult{}, err
	}
	for i := range n / 10 { // warm-up
		echo(ctx, s, int64(100+i), &errs)
	}
	l := make(latencies, 0, n)
	allocsBefore := readAllocs(c)
	profiled := startProfiles(e, c, "c1")
	for i := range n {
		if took, ok := echo(ctx, s, int64(1_000_000+i), &errs); ok {
			l = append(l, took)
		}
	}
	allocs, bytes := perCall(allocsBefore, readAllocs(c), n)
	profiled()
	if len(l) == 0 {
		return latencyResult{errors: errs.total()}, fmt.Errorf("no call succeeded")
	}
	return latencyResult{p50: l.pct(0.5), p99: l.pct(0.99), max: l.max(), errors: errs.total(), allocs: allocs, bytes: bytes}, nil
}

// runMRTR: one session, n sequential calls of the confirm tool, which
// needs one round of input (answered at once by the client) before it
// answers; the p50 against runLatency's echo p50 is what a round adds.
func runMRTR(c *contender, n int) (latencyResult, error) {
	var errs counters
	s, err := openSession(c, &errs)
	if err != nil {
		return latencyResult{}, err
	}
	defer s.close()
	ctx := context.Background()
	if err := handshake(ctx, s, 1); err != nil {
		return latencyResult{}, err
	}
	confirm := func(id int64) (time.Duration, bool) {
		token := fmt.Sprintf("c%d", id)
		start := time.Now()
		r, err := s.call(ctx, id, "tools/call", fmt.Sprintf(`{"name":"confirm","arguments":{"text":%q}}`, token))
		took := time.Since(start)
		if err != nil || r.text() != token {
			errs.failed.Add(1)
			return 0, false
		}
		return took, true
	}
	for i := range n / 10 { // warm-up
		confirm(int64(100 + i))
	}
	l := make(latencies, 0, n)
	for i := range n {
		if took, ok := confirm(int64(1_000_000 + i)); ok {
			l = append(l, took)
		}
	}
	if len(l) == 0 {
		return latencyResult{errors: errs.total()}, fmt.Errorf("no confirm call succeeded")
	}
	return latencyResult{p50: l.pct(0.5), p99: l.pct(0.99), max: l.max(), errors: errs.total()}, nil
}

type throughputResult struct {
	callsPerSec       float64
	p50, p99          time.Duration
	errors            int64
	missing, dup, mis int64
	cpuTree, cpuMain  float64 // CPU-seconds per 1,000 calls
	allocs, bytes     float64 // what Caddy allocated per call (ours only)
	redis             *redisResult
}

// runThroughput: sessions in parallel, each making calls sequential echo
// calls; ids are unique across sessions, so an answer in the wrong
// session is seen.
func runThroughput(e *env, c *contender, sessions, calls int) (throughputResult, error) {
	var errs counters
	ctx := context.Background()
	ss := make([]session, sessions)
	for i := range ss {
		s, err := openSession(c, &errs)
		if err != nil {
			return throughputResult{}, fmt.Errorf("session %d: %w", i, err)
		}
		defer s.close()
		if err := handshake(ctx, s, int64(i)); err != nil {
			return throughputResult{}, fmt.Errorf("session %d: %w", i, err)
		}
		ss[i] = s
	}
	var probe *redisProbe
	if c.redisAt != "" {
		var err error
		if probe, err = startRedisProbe(c); err != nil {
			return throughputResult{}, fmt.Errorf("redis: %w", err)
		}
	}
	allocsBefore := readAllocs(c)
	treeBefore, mainBefore := cpuSeconds(c.treePIDs()), cpuSeconds(c.mainPIDs())
	profiled := startProfiles(e, c, "c64")
	var mu sync.Mutex
	all := make(latencies, 0, sessions*calls)
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range ss {
		wg.Go(func() {
			local := make(latencies, 0, calls)
			for k := range calls {
				if took, ok := echo(ctx, s, int64((i+1)*1_000_000+k), &errs); ok {
					local = append(local, took)
				}
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	treeAfter, mainAfter := cpuSeconds(c.treePIDs()), cpuSeconds(c.mainPIDs())
	allocs, bytes := perCall(allocsBefore, readAllocs(c), sessions*calls)
	var rr *redisResult
	if probe != nil {
		r, err := probe.finish(sessions * calls)
		if err != nil {
			return throughputResult{}, fmt.Errorf("redis: %w", err)
		}
		rr = &r
	}
	profiled()
	time.Sleep(500 * time.Millisecond) // let late duplicates or strays arrive and be counted
	total := float64(sessions * calls)
	return throughputResult{
		callsPerSec: float64(len(all)) / elapsed.Seconds(),
		p50:         all.pct(0.5),
		p99:         all.pct(0.99),
		redis:       rr,
		errors:      errs.total(),
		missing:     errs.missing.Load(),
		dup:         errs.duplicated.Load(),
		mis:         errs.misrouted.Load(),
		cpuTree:     (treeAfter - treeBefore) / total * 1000,
		cpuMain:     (mainAfter - mainBefore) / total * 1000,
		allocs:      allocs,
		bytes:       bytes,
	}, nil
}

type idleResult struct {
	n              int
	kibPerSession  float64 // whole process tree
	kibMain        float64 // the bridge process alone (Caddy, for ours)
	open           time.Duration
	opened         int
	alive, checked int
}

// runIdle opens n streams over raw TCP, spread over four loopback source
// addresses so that 50,000 connections do not run out of ephemeral ports,
// and measures the server's resident memory per stream. A sample of the
// streams is then pinged to show they are alive.
func runIdle(c *contender, n int) (idleResult, error) {
	u, _ := url.Parse(c.url)
	treeBase, mainBase := rssKiB(c.treePIDs()), rssKiB(c.mainPIDs())
	conns := make([]net.Conn, n)
	endpoints := make([]string, n)
	var failed sync.Map
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := range next {
				conn, ep, err := openRaw(u, i)
				if err != nil {
					failed.Store(i, err)
					continue
				}
				conns[i], endpoints[i] = conn, ep
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	res := idleResult{n: n, open: time.Since(start)}
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
	}()
	for _, conn := range conns {
		if conn != nil {
			res.opened++
		}
	}
	if res.opened == 0 {
		var first error
		failed.Range(func(_, v any) bool { first = v.(error); return false })
		return res, fmt.Errorf("no stream opened: %v", first)
	}
	time.Sleep(2 * time.Second) // let the server settle before reading its memory
	res.kibPerSession = float64(rssKiB(c.treePIDs())-treeBase) / float64(res.opened)
	res.kibMain = float64(rssKiB(c.mainPIDs())-mainBase) / float64(res.opened)
	if *hold > 0 {
		log.Printf("%s: holding %d streams open for %s", c.name, res.opened, *hold)
		time.Sleep(*hold)
	}

	for k := range 20 {
		i := k * n / 20
		if conns[i] == nil {
			continue
		}
		res.checked++
		if pingRaw(u, conns[i], endpoints[i], k) {
			res.alive++
		}
	}
	return res, nil
}

// openRaw opens one stream and returns its connection and endpoint URL.
func openRaw(u *url.URL, i int) (net.Conn, string, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%4))}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, "", err
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", u.RequestURI(), u.Host)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 0, 1024)
	tmp := make([]byte, 1024)
	for {
		n, err := conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("event: endpoint")); i >= 0 {
			rest := buf[i:]
			if j := bytes.Index(rest, []byte("data: ")); j >= 0 {
				if k := bytes.IndexByte(rest[j:], '\n'); k >= 0 {
					conn.SetReadDeadline(time.Time{})
					ref, err := u.Parse(strings.TrimSpace(string(rest[j+6 : j+k])))
					if err != nil {
						conn.Close()
						return nil, "", err
					}
					return conn, ref.String(), nil
				}
			}
		}
		if err != nil {
			conn.Close()
			return nil, "", err
		}
		if len(buf) > 64<<10 {
			conn.Close()
			return nil, "", fmt.Errorf("no endpoint event in %d bytes", len(buf))
		}
	}
}

// pingRaw posts a ping on a stream's session and reads the stream until
// the answer arrives.
func pingRaw(u *url.URL, conn net.Conn, endpoint string, k int) bool {
	id := fmt.Sprintf("alive-%d", k)
	resp, err := httpClient.Post(endpoint, "application/json",
		strings.NewReader(fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"ping"}`, id)))
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return false
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	var seen []byte
	tmp := make([]byte, 4096)
	for {
		n, err := conn.Read(tmp)
		seen = append(seen, tmp[:n]...)
		if bytes.Contains(seen, []byte(id)) {
			return true
		}
		if err != nil || len(seen) > 1<<20 {
			return false
		}
	}
}

type burstResult struct {
	frames    int64
	perSecond float64
	took      time.Duration
}

// runBurst: one session; one call whose reply pushes n progress
// notifications through the stream before its result.
func runBurst(c *contender, n int) (burstResult, error) {
	var errs counters
	s, err := openSSE(c.url, c.postHost, c.authorization, &errs)
	if err != nil {
		return burstResult{}, err
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := handshake(ctx, s, 1); err != nil {
		return burstResult{}, err
	}
	start := time.Now()
	r, err := s.call(ctx, 2, "tools/call", fmt.Sprintf(`{"name":"burst","arguments":{"count":%d},"_meta":{"progressToken":"b"}}`, n))
	took := time.Since(start)
	if err != nil {
		return burstResult{}, err
	}
	if r.Error != nil {
		return burstResult{}, fmt.Errorf("burst: %s", r.Error.Message)
	}
	got := s.notified.Load()
	if got != int64(n) {
		return burstResult{}, fmt.Errorf("burst: %d of %d notifications arrived before the result", got, n)
	}
	return burstResult{frames: got + 1, perSecond: float64(got+1) / took.Seconds(), took: took}, nil
}

type setupResult struct {
	n          int
	p50, p99   time.Duration
	kibSession float64 // resident memory per initialized session, its process included
}

// runSetup opens n sessions one after the other and times each from the
// POST of initialize to its answer (for ours/stdio: spawn to initialize
// answered), then measures the growth of the process tree's resident
// memory per session, with every session and its process still open.
func runSetup(c *contender, n int) (setupResult, error) {
	var errs counters
	ctx := context.Background()
	before := rssKiB(c.treePIDs())
	l := make(latencies, 0, n)
	for i := range n {
		s, err := openSession(c, &errs)
		if err != nil {
			return setupResult{}, fmt.Errorf("session %d: %w", i, err)
		}
		defer s.close()
		start := time.Now()
		if _, err := s.call(ctx, int64(i), "initialize", initParams); err != nil {
			return setupResult{}, fmt.Errorf("session %d: initialize: %w", i, err)
		}
		l = append(l, time.Since(start))
		if sse, ok := s.(*sseSession); ok {
			if err := sse.notify(ctx, "notifications/initialized"); err != nil {
				return setupResult{}, err
			}
		}
	}
	time.Sleep(time.Second) // let the processes settle
	after := rssKiB(c.treePIDs())
	return setupResult{n: n, p50: l.pct(0.5), p99: l.pct(0.99), kibSession: float64(after-before) / float64(n)}, nil
}
