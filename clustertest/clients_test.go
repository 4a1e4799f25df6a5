package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mcpgoclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var demoTools = []string{"add", "echo", "sample", "slow"}

// checkDemoTools fails the test unless names are the demo's tools, in any
// order.
func checkDemoTools(t *testing.T, names []string) {
	t.Helper()
	names = slices.Sorted(slices.Values(names))
	if !slices.Equal(names, demoTools) {
		t.Errorf("tools = %v, want %v", names, demoTools)
	}
}

// TestClusterClients: the real clients, each through the balancer (so
// its POSTs land on every instance in turn, most of them not the one
// holding its stream), pass the checks the single-instance tests make:
// initialize, tools/list, echo, add, progress from slow, and (Go SDK,
// TypeScript) a sampling round trip, whose answer is a POST too. Then 20
// sessions make 50 calls each at once, every call with a token of its
// own: every answer comes once, on its own session's stream, with its own
// token.
func TestClusterClients(t *testing.T) {
	c := startCluster(t, clusterOptions{})

	t.Run("go-sdk", func(t *testing.T) { goSDKChecks(t, c) })
	t.Run("mcp-go", func(t *testing.T) { mcpGoChecks(t, c) })
	t.Run("typescript", func(t *testing.T) { typeScriptChecks(t, c) })
	t.Run("20 sessions × 50 calls", func(t *testing.T) { concurrentCalls(t, c, 20, 50) })
}

// checkListed checks that every live instance lists session id with the
// same owner.
func checkListed(t *testing.T, c *cluster, id string) {
	t.Helper()
	owners := map[string][]string{} // owner → the instances naming it
	for _, in := range c.live() {
		found := false
		for _, s := range c.sessions(t, in) {
			if s.ID == id {
				found = true
				owners[s.Owner] = append(owners[s.Owner], in.name)
			}
		}
		if !found {
			t.Errorf("instance %s does not list session %s", in.name, id)
		}
	}
	if _, none := owners[""]; len(owners) != 1 || none {
		t.Errorf("session %s listed with owners %v (owner → instances listing it), want one owner named by all", id, owners)
	}
}

// sessionRecorder is an http.RoundTripper that notes the session_id of
// the POSTs going through it.
type sessionRecorder struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	session string
}

func (r *sessionRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if id := req.URL.Query().Get("session_id"); req.Method == http.MethodPost && id != "" {
		r.mu.Lock()
		r.session = id
		r.mu.Unlock()
	}
	return r.rt.RoundTrip(req)
}

func (r *sessionRecorder) id(t *testing.T) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session == "" {
		t.Fatal("the client has POSTed to no session")
	}
	return r.session
}

func goSDKChecks(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var progress []float64
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-cluster", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "42"}}, nil
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		},
	})
	// The SDK does not tell its SSE session's id: read it off its POSTs.
	ids := &sessionRecorder{rt: httpClient.Transport}
	cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: c.base() + "/sse", HTTPClient: &http.Client{Transport: ids}}, nil)
	if err != nil {
		t.Fatalf("go-sdk connect through the balancer: %v", err)
	}
	defer cs.Close()
	if got := cs.InitializeResult().ServerInfo.Name; got != "mcp-sse-demo" {
		t.Errorf("server name = %q", got)
	}
	checkListed(t, c, ids.id(t))
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	checkDemoTools(t, names)

	slow := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"steps": 3, "delay_ms": 20}}
	slow.SetProgressToken("p")
	calls := []struct {
		params *mcp.CallToolParams
		want   string
	}{
		{&mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "from the go sdk"}}, "from the go sdk"},
		{&mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 40}}, "42"},
		{slow, "done after 3 steps"},
		{&mcp.CallToolParams{Name: "sample", Arguments: map[string]any{"prompt": "meaning?"}}, "model m said: 42"},
	}
	for _, call := range calls {
		res, err := cs.CallTool(ctx, call.params)
		if err != nil {
			t.Fatalf("%s: %v", call.params.Name, err)
		}
		if res.IsError || len(res.Content) == 0 {
			t.Fatalf("%s: %+v", call.params.Name, res)
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != call.want {
			t.Errorf("%s = %q, want %q", call.params.Name, got, call.want)
		}
	}
	// The SDK runs notification handlers on a goroutine of their own,
	// possibly after the call's result.
	eventually(t, 5*time.Second, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(progress, []float64{1, 2, 3}) {
		t.Errorf("progress = %v, want [1 2 3]", progress)
	}
}

func mcpGoChecks(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := mcpgoclient.NewSSEMCPClient(c.base() + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	var progress []float64
	cl.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method != "notifications/progress" {
			return
		}
		if p, ok := n.Params.AdditionalFields["progress"].(float64); ok {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		}
	})
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("mcp-go start through the balancer: %v", err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "mcp-go-cluster", Version: "1.0.0"}
	ir, err := cl.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("mcp-go initialize: %v", err)
	}
	if ir.ServerInfo.Name != "mcp-sse-demo" {
		t.Errorf("server name = %q", ir.ServerInfo.Name)
	}
	tools, err := cl.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("mcp-go tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	checkDemoTools(t, names)
	calls := []struct {
		name string
		args map[string]any
		meta *mcpgo.Meta
		want string
	}{
		{"echo", map[string]any{"text": "from mcp-go"}, nil, "from mcp-go"},
		{"add", map[string]any{"a": 2, "b": 40}, nil, "42"},
		{"slow", map[string]any{"steps": 3, "delay_ms": 20}, &mcpgo.Meta{ProgressToken: "mp"}, "done after 3 steps"},
	}
	for _, call := range calls {
		req := mcpgo.CallToolRequest{}
		req.Params.Name, req.Params.Arguments, req.Params.Meta = call.name, call.args, call.meta
		res, err := cl.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("mcp-go %s: %v", call.name, err)
		}
		if res.IsError || len(res.Content) == 0 {
			t.Fatalf("mcp-go %s: %+v", call.name, res)
		}
		if got := res.Content[0].(mcpgo.TextContent).Text; got != call.want {
			t.Errorf("mcp-go %s = %q, want %q", call.name, got, call.want)
		}
	}
	eventually(t, 5*time.Second, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(progress, []float64{1, 2, 3}) {
		t.Errorf("progress = %v, want [1 2 3]", progress)
	}
}

func typeScriptChecks(t *testing.T, c *cluster) {
	checkNodePackages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(tsclientDir, "cluster_client.mjs"), c.base()+"/sse", "from typescript")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node cluster_client.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	var got struct {
		Session  string    `json:"session"`
		Server   string    `json:"server"`
		Tools    []string  `json:"tools"`
		Text     string    `json:"text"`
		Add      string    `json:"add"`
		Slow     string    `json:"slow"`
		Progress []float64 `json:"progress"`
		Wire     []float64 `json:"wire"`
		Sample   string    `json:"sample"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("node client printed %q: %v", stdout.Bytes(), err)
	}
	if got.Server != "mcp-sse-demo" || !slices.Equal(got.Tools, demoTools) || got.Text != "from typescript" ||
		got.Add != "42" || got.Slow != "done after 3 steps" || got.Sample != "model ts-model said: ts answer to q" {
		t.Errorf("node client saw %+v", got)
	}
	// Every progress notification reached the client before the result
	// (wire: as its transport read them). The SDK loses inside the client
	// those it read in one chunk with the result, so onprogress sees a
	// prefix of them (see mcpstdio's TestTypeScriptClients).
	if !slices.Equal(got.Wire, []float64{1, 2, 3}) {
		t.Errorf("progress before the result on the wire %v, want [1 2 3]", got.Wire)
	}
	if len(got.Progress) > len(got.Wire) || !slices.Equal(got.Progress, got.Wire[:len(got.Progress)]) {
		t.Errorf("progress %v seen by the SDK's onprogress, want a prefix of those on the wire %v", got.Progress, got.Wire)
	}
	checkListed(t, c, got.Session)
}

// concurrentCalls opens sessions streams through the balancer (one after
// the other, so that round-robin spreads them over the instances), then
// has each make calls echo calls at once with the others, each POST
// through the balancer and so, most of the time, through an instance
// that does not hold the stream. Every answer must come exactly once, on
// the stream of the session that asked, carrying the token asked.
func concurrentCalls(t *testing.T, c *cluster, sessions, calls int) {
	raws := make([]*rawSession, sessions)
	for i := range raws {
		raws[i] = openRaw(t, c.base(), nil)
	}
	owners := map[string]int{}
	for _, s := range raws {
		owners[c.ownerOf(t, c.inst[0], s.ID).name]++
	}
	if len(owners) != len(c.inst) {
		t.Errorf("sessions opened one after the other through round-robin are owned by %v, want every instance", owners)
	}

	var wg sync.WaitGroup
	var initFailed atomic.Int32
	for _, s := range raws {
		wg.Go(func() {
			// initialize fails through t.Fatalf, which must not run off
			// the test's goroutine: do the handshake by hand.
			code, body, err := s.post(c.base(), `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"clustertest-load","version":"1"}}}`)
			if err != nil || code != 202 {
				t.Errorf("session %s: initialize POST: %d %s %v", s.ID, code, body, err)
				initFailed.Add(1)
			}
		})
	}
	wg.Wait()
	if initFailed.Load() > 0 {
		t.FailNow()
	}
	for _, s := range raws {
		s.waitAnswer(t, 20*time.Second, "init")
	}

	want := make([]map[string]string, sessions) // by session: id → token
	for i := range want {
		want[i] = map[string]string{}
		for j := range calls {
			want[i][fmt.Sprintf("s%02d-c%02d", i, j)] = randomHex(8)
		}
	}
	start := time.Now()
	var refused atomic.Int32
	for i, s := range raws {
		wg.Go(func() {
			if code, body, err := s.post(c.base(), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil || code != 202 {
				t.Errorf("session %s: notifications/initialized: %d %s %v", s.ID, code, body, err)
				refused.Add(1)
				return
			}
			for j := range calls {
				id := fmt.Sprintf("s%02d-c%02d", i, j)
				code, body, err := s.post(c.base(), echoRequest(id, want[i][id]))
				if err != nil || code != 202 {
					t.Errorf("session %s: POST %s: %d %s %v", s.ID, id, code, body, err)
					refused.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() > 0 {
		t.FailNow()
	}
	answered := func(s *rawSession) int {
		n := 0
		for _, m := range s.messages() {
			if m.Method == "" && m.id() != "init" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for i, s := range raws {
		for answered(s) < calls && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := answered(s); n < calls {
			t.Errorf("session %d (%s): %d of %d answers within 60s", i, s.ID, n, calls)
		}
	}
	t.Logf("%d calls on %d sessions answered in %s", sessions*calls, sessions, time.Since(start).Round(time.Millisecond))
	// Late duplicates would come now.
	time.Sleep(500 * time.Millisecond)

	var lost, misrouted, duplicated, wrong int
	for i, s := range raws {
		seen := map[string]int{}
		for _, m := range s.messages() {
			if m.Method != "" || m.id() == "init" {
				continue
			}
			id := m.id()
			token, ours := want[i][id]
			switch {
			case !ours:
				misrouted++
				t.Errorf("session %d (%s) got the answer to %s, not one of its calls: %s", i, s.ID, id, m.Result)
			case m.Error != nil || m.text() != token:
				wrong++
				t.Errorf("session %d: answer to %s is %s %+v, want the token %s", i, id, m.Result, m.Error, token)
			}
			seen[id]++
		}
		for id := range want[i] {
			switch n := seen[id]; {
			case n == 0:
				lost++
			case n > 1:
				duplicated++
				t.Errorf("session %d: %s answered %d times", i, id, n)
			}
		}
	}
	if lost+misrouted+duplicated+wrong > 0 {
		t.Errorf("of %d calls: %d lost, %d misrouted, %d duplicated, %d answered wrong", sessions*calls, lost, misrouted, duplicated, wrong)
	}

	var ids []string
	for _, s := range raws {
		ids = append(ids, s.ID)
	}
	c.checkKeys(t, ids)

	// Most POSTs crossed instances (two in three, with round-robin over
	// three): the cluster metrics count them.
	var sent, received, observed float64
	for _, in := range c.inst {
		sent += c.metric(t, in, "caddy_mcp_sse_cluster_messages_total", `direction="sent"`)
		received += c.metric(t, in, "caddy_mcp_sse_cluster_messages_total", `direction="received"`)
		observed += c.metric(t, in, "caddy_mcp_sse_cluster_message_seconds_count")
	}
	t.Logf("cluster metrics: %v sent, %v received, %v timed", sent, received, observed)
	if floor := float64(sessions * calls / 3); sent < floor || received < floor {
		t.Errorf("caddy_mcp_sse_cluster_messages_total: %v sent, %v received across the instances; want at least %v each (two POSTs in three of %d land on an instance that does not hold the stream)",
			sent, received, floor, sessions*calls)
	}
	if observed == 0 {
		t.Error("caddy_mcp_sse_cluster_message_seconds observed nothing")
	}
}
