package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// fakeTokenEndpoint is an authorization server whose token endpoint
// answers with answer, counting and recording the requests.
type fakeTokenEndpoint struct {
	srv    *httptest.Server
	calls  atomic.Int32
	mu     sync.Mutex
	forms  []url.Values
	users  []string
	answer func(w http.ResponseWriter, r *http.Request)
}

func newFakeTokenEndpoint(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *fakeTokenEndpoint {
	t.Helper()
	f := &fakeTokenEndpoint{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL, "jwks_uri": f.srv.URL + "/jwks", "token_endpoint": f.srv.URL + "/token"})
		case "/token":
			f.calls.Add(1)
			_ = r.ParseForm()
			user, pass, _ := r.BasicAuth()
			f.mu.Lock()
			f.forms = append(f.forms, r.PostForm)
			f.users = append(f.users, user+":"+pass)
			f.mu.Unlock()
			f.answer(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func tokenAnswer(token string, expiresIn int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "issued_token_type": oauth.TokenTypeAccessToken,
			"token_type": "Bearer", "expires_in": expiresIn})
	}
}

func newExchanger(t *testing.T, issuer string, cfg oauth.ExchangeConfig, now func() time.Time) *oauth.Exchanger {
	t.Helper()
	v, err := oauth.NewVerifier(oauth.Config{Issuer: issuer, Timeout: 2 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = "rs", "rs-secret"
	}
	if cfg.Resource == "" && cfg.Audience == "" {
		cfg.Resource = "https://downstream.example/api"
	}
	x, err := v.NewExchanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestOAuthExchangeRequest: the exchange is the RFC 8693 request,
// authenticated with client_secret_basic, and its token is reused for
// the same client token, not for another.
func TestOAuthExchangeRequest(t *testing.T) {
	as := newFakeTokenEndpoint(t, tokenAnswer("downstream-token", 300))
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{Resource: "https://downstream.example/api", Audience: "api",
		Scopes: []string{"read", "write"}}, nil)
	got, err := x.Exchange(t.Context(), "client-token", time.Time{})
	if err != nil || got.AccessToken != "downstream-token" || got.Shared {
		t.Fatalf("Exchange: %+v %v", got, err)
	}
	want := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {"client-token"},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"resource":             {"https://downstream.example/api"},
		"audience":             {"api"},
		"scope":                {"read write"},
	}
	as.mu.Lock()
	form, user := as.forms[0], as.users[0]
	as.mu.Unlock()
	if form.Encode() != want.Encode() || user != "rs:rs-secret" {
		t.Errorf("request %s as %q\nwant    %s as rs:rs-secret", form.Encode(), user, want.Encode())
	}
	again, err := x.Exchange(t.Context(), "client-token", time.Time{})
	if err != nil || again.AccessToken != "downstream-token" || !again.Shared {
		t.Errorf("again: %+v %v", again, err)
	}
	if n := as.calls.Load(); n != 1 {
		t.Errorf("two calls with one client token made %d exchanges, want 1", n)
	}
	if _, err := x.Exchange(t.Context(), "another-client-token", time.Time{}); err != nil || as.calls.Load() != 2 {
		t.Errorf("another client token: %v, %d exchanges, want 2", err, as.calls.Load())
	}
}

// TestOAuthExchangeCacheLife: an exchanged token is reused until the
// earlier of its own expiry and the client token's, less the margin.
// TestOAuthExchangeCacheKey: the cache is keyed on the whole client
// token: client tokens that differ in their last byte only (their
// signature), or in their claims only, each get a token of their own.
func TestOAuthExchangeCacheKey(t *testing.T) {
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		tokenAnswer("for-"+strings.ReplaceAll(r.PostForm.Get("subject_token"), ".", "-"), 300)(w, r)
	})
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
	const header = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9"
	for _, subject := range []string{header + ".eyJzdWIiOiJhbGljZSJ9.c2lnA", header + ".eyJzdWIiOiJhbGljZSJ9.c2lnB",
		header + ".eyJzdWIiOiJib2IifQ.c2lnA", header + ".eyJzdWIiOiJhbGljZSJ9.c2lnA"} {
		res, err := x.Exchange(t.Context(), subject, time.Time{})
		if want := "for-" + strings.ReplaceAll(subject, ".", "-"); err != nil || res.AccessToken != want {
			t.Errorf("client token %s: %+v %v, want %s", subject, res, err, want)
		}
	}
	if n := as.calls.Load(); n != 3 {
		t.Errorf("%d exchanges for three client tokens, one of them twice; want 3", n)
	}
}

func TestOAuthExchangeCacheLife(t *testing.T) {
	for _, tc := range []struct {
		name       string
		expiresIn  int
		subjectExp time.Duration // from now; 0: none
		reused     time.Duration // reused up to here, not from 2s later
	}{
		{"the exchanged token's expiry", 120, 10 * time.Minute, 90 * time.Second},
		{"the client token's expiry", 300, time.Minute, 30 * time.Second},
		{"no exp at all", 0, 0, oauth.DefaultExchangeLifetime - oauth.DefaultExchangeMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeTokenEndpoint(t, tokenAnswer("t", tc.expiresIn))
			c := &clock{}
			x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, c.now)
			var subjectExp time.Time
			if tc.subjectExp != 0 {
				subjectExp = c.now().Add(tc.subjectExp)
			}
			for _, step := range []struct {
				advance time.Duration
				calls   int32
			}{{0, 1}, {tc.reused - time.Second, 1}, {2 * time.Second, 2}} {
				c.advance(step.advance)
				if _, err := x.Exchange(t.Context(), "client-token", subjectExp); err != nil {
					t.Fatal(err)
				}
				if n := as.calls.Load(); n != step.calls {
					t.Fatalf("after %s more: %d exchanges, want %d", step.advance, n, step.calls)
				}
			}
		})
	}
}

// TestOAuthExchangeFailures: a refusal by the server (4xx) is
// exchange_refused; a server that cannot be asked, fails, or answers
// with no usable token is exchange_unavailable. Either is answered from
// memory for FailureHold to calls with the same client token, then asked
// again.
func TestOAuthExchangeFailures(t *testing.T) {
	status := func(code int, body string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		reason oauth.Reason
		inErr  string
	}{
		{"invalid_target", status(400, `{"error":"invalid_target"}`), oauth.ReasonExchangeRefused, `error "invalid_target"`},
		{"invalid_grant", status(400, `{"error":"invalid_grant"}`), oauth.ReasonExchangeRefused, `error "invalid_grant"`},
		{"invalid_client", status(401, `{"error":"invalid_client"}`), oauth.ReasonExchangeRefused, "401"},
		{"server error", status(500, `{"error":"server_error"}`), oauth.ReasonExchangeUnavailable, "500"},
		{"rate limited", status(429, ``), oauth.ReasonExchangeUnavailable, "429"},
		{"request timeout", status(408, ``), oauth.ReasonExchangeUnavailable, "408"},
		{"no token", status(200, `{"token_type":"Bearer"}`), oauth.ReasonExchangeUnavailable, "no access_token"},
		{"token too large", tokenAnswer(strings.Repeat("a", oauth.DefaultMaxExchangedTokenBytes+1), 60), oauth.ReasonExchangeUnavailable, "more than"},
		{"token breaking the header", tokenAnswer("a\r\nX-Injected: 1", 60), oauth.ReasonExchangeUnavailable, "b64token"},
		{"DPoP token", status(200, `{"access_token":"t","token_type":"DPoP"}`), oauth.ReasonExchangeUnavailable, "DPoP"},
		{"refresh token", status(200, `{"access_token":"t","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}`), oauth.ReasonExchangeUnavailable, "refresh_token"},
		{"not JSON", status(200, `<html>`), oauth.ReasonExchangeUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeTokenEndpoint(t, tc.answer)
			var clk clock
			x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, clk.now)
			for i := range 3 {
				if i == 2 {
					clk.advance(oauth.FailureHold)
				}
				_, err := x.Exchange(t.Context(), "client-token", time.Time{})
				if reason(err) != tc.reason || !strings.Contains(err.Error(), tc.inErr) {
					t.Fatalf("call %d: %v, want %s containing %q", i, err, tc.reason, tc.inErr)
				}
				if want := int32(1 + i/2); as.calls.Load() != want {
					t.Fatalf("call %d: %d exchanges, want %d (a failure is held for FailureHold, then asked again)", i, as.calls.Load(), want)
				}
			}
			// Another client token is not held by this one's failure.
			_, _ = x.Exchange(t.Context(), "other-token", time.Time{})
			if n := as.calls.Load(); n != 3 {
				t.Errorf("another client token: %d exchanges in all, want 3", n)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		as := newFakeTokenEndpoint(t, tokenAnswer("t", 60))
		x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
		as.srv.Close()
		if _, err := x.Exchange(t.Context(), "client-token", time.Time{}); reason(err) != oauth.ReasonExchangeUnavailable {
			t.Errorf("unreachable: %v", err)
		}
	})
	t.Run("hung", func(t *testing.T) {
		release := make(chan struct{})
		as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		v, _ := oauth.NewVerifier(oauth.Config{Issuer: as.srv.URL, Timeout: 300 * time.Millisecond})
		x, _ := v.NewExchanger(oauth.ExchangeConfig{ClientID: "rs", ClientSecret: "s", Resource: "https://d.example"})
		if _, err := x.Exchange(t.Context(), "client-token", time.Time{}); reason(err) != oauth.ReasonExchangeUnavailable {
			t.Errorf("hung: %v", err)
		}
	})
}

// TestOAuthExchangeInFlightBound: while the token endpoint hangs, at
// most MaxExchangesInFlight exchanges wait on it; one more distinct client
// token fails at once as unavailable instead of holding one more
// connection and goroutine.
func TestOAuthExchangeInFlightBound(t *testing.T) {
	release := make(chan struct{})
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	v, err := oauth.NewVerifier(oauth.Config{Issuer: as.srv.URL, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	x, err := v.NewExchanger(oauth.ExchangeConfig{ClientID: "rs", ClientSecret: "s", Resource: "https://d.example/"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for i := range oauth.MaxExchangesInFlight {
		wg.Go(func() { _, _ = x.Exchange(context.Background(), fmt.Sprintf("token-%d", i), time.Time{}) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for as.calls.Load() < oauth.MaxExchangesInFlight {
		if time.Now().After(deadline) {
			t.Fatalf("%d exchanges reached the token endpoint within 10s, want %d", as.calls.Load(), oauth.MaxExchangesInFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		_, err := x.Exchange(context.Background(), "one-more", time.Time{})
		done <- err
	}()
	select {
	case err := <-done:
		if reason(err) != oauth.ReasonExchangeUnavailable {
			t.Errorf("one exchange more than the bound: %v, want exchange_unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("one exchange more than the bound waited on the hung token endpoint")
	}
	if n := as.calls.Load(); n != oauth.MaxExchangesInFlight {
		t.Errorf("%d calls to the token endpoint, want %d", n, oauth.MaxExchangesInFlight)
	}
}

// TestOAuthExchangeNoRedirect: a redirect from the token endpoint is not
// followed (it would send the client's token and our credentials again,
// wherever it points): the exchange is unavailable.
func TestOAuthExchangeNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/token", http.StatusTemporaryRedirect)
	})
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
	if _, err := x.Exchange(t.Context(), "client-token", time.Time{}); reason(err) != oauth.ReasonExchangeUnavailable {
		t.Errorf("a redirect: %v, want exchange_unavailable", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed (%d requests elsewhere)", n)
	}
}

// TestOAuthExchangeConcurrent: concurrent calls with one client token
// make one exchange and all get its token.
func TestOAuthExchangeConcurrent(t *testing.T) {
	const n = 8
	release := make(chan struct{})
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		tokenAnswer("shared-token", 300)(w, r)
	})
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
	results := make(chan string, n)
	var exchanged atomic.Int32 // calls told theirs was not Shared
	for range n {
		go func() {
			res, err := x.Exchange(context.Background(), "client-token", time.Time{})
			if err != nil {
				results <- err.Error()
				return
			}
			if !res.Shared {
				exchanged.Add(1)
			}
			results <- res.AccessToken
		}()
	}
	eventuallyTrue(t, "every call at the server or waiting for the one there", func() bool {
		return int(as.calls.Load())+max(0, x.ExchangeWaiters("client-token")) == n
	})
	close(release)
	for range n {
		if got := <-results; got != "shared-token" {
			t.Errorf("a call got %q", got)
		}
	}
	if c := as.calls.Load(); c != 1 {
		t.Errorf("%d concurrent calls with one client token made %d exchanges, want 1", n, c)
	}
	if c := exchanged.Load(); c != 1 {
		t.Errorf("%d calls were told they made the exchange (not Shared), want 1", c)
	}
}

// TestOAuthExchangeConcurrentFailure: concurrent calls with one client
// token while the server refuses the exchange all get the refusal, from
// one exchange.
func TestOAuthExchangeConcurrentFailure(t *testing.T) {
	const n = 8
	release := make(chan struct{})
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
	})
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // before the server closes, should the test end early
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := x.Exchange(context.Background(), "client-token", time.Time{})
			if err == nil {
				err = errors.New("no error, token " + res.AccessToken)
			}
			errs <- err
		}()
	}
	eventuallyTrue(t, "every call at the server or waiting for the one there", func() bool {
		return int(as.calls.Load())+max(0, x.ExchangeWaiters("client-token")) == n
	})
	open()
	for range n {
		if err := <-errs; reason(err) != oauth.ReasonExchangeRefused {
			t.Errorf("a call got %v, want exchange_refused", err)
		}
	}
	if c := as.calls.Load(); c != 1 {
		t.Errorf("%d concurrent calls made %d exchanges, want 1", n, c)
	}
}

// TestOAuthExchangeOutlivesCaller: an exchange is not given up with the
// call that started it (its client went away): the calls waiting for it
// get its token, and a call whose context is already done still gets
// one.
func TestOAuthExchangeOutlivesCaller(t *testing.T) {
	release := make(chan struct{})
	as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.PostForm.Get("subject_token") == "held" {
			<-release
		}
		tokenAnswer("downstream-token", 300)(w, r)
	})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // before the server closes, should the test end early
	x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)

	done, cancel := context.WithCancel(t.Context())
	cancel()
	if res, err := x.Exchange(done, "client-token", time.Time{}); err != nil || res.AccessToken != "downstream-token" {
		t.Errorf("a call whose context is done: %+v %v, want the token", res, err)
	}

	calls := as.calls.Load()
	first, cancelFirst := context.WithCancel(t.Context())
	defer cancelFirst()
	firstDone := make(chan error, 1)
	go func() {
		_, err := x.Exchange(first, "held", time.Time{})
		firstDone <- err
	}()
	eventuallyTrue(t, "the first call's exchange at the server", func() bool { return as.calls.Load() == calls+1 })
	waiter := make(chan error, 1)
	go func() {
		res, err := x.Exchange(t.Context(), "held", time.Time{})
		if err == nil && res.AccessToken != "downstream-token" {
			err = errors.New("token " + res.AccessToken)
		}
		waiter <- err
	}()
	eventuallyTrue(t, "the second call waiting for the first's exchange", func() bool { return x.ExchangeWaiters("held") == 1 })
	cancelFirst()
	open()
	if err := <-waiter; err != nil {
		t.Errorf("a call waiting for an exchange whose caller went away: %v, want the token", err)
	}
	<-firstDone
	if c := as.calls.Load() - calls; c != 1 {
		t.Errorf("%d exchanges for two calls with one client token, want 1", c)
	}
}

// TestOAuthExchangeAnswers: answers RFC 8693 allows are taken: a token
// of exactly the bound, issued_token_type jwt, token_type in any case,
// expires_in as a string, no issued_token_type nor token_type.
func TestOAuthExchangeAnswers(t *testing.T) {
	atBound := strings.Repeat("a", oauth.DefaultMaxExchangedTokenBytes)
	for _, tc := range []struct {
		name, body, token string
	}{
		{"token at the bound", `{"access_token":"` + atBound + `","token_type":"Bearer","expires_in":300}`, atBound},
		{"jwt", `{"access_token":"t","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"Bearer"}`, "t"},
		{"lower-case bearer", `{"access_token":"t","token_type":"bearer"}`, "t"},
		{"expires_in as a string", `{"access_token":"t","expires_in":"300"}`, "t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
			})
			x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
			if res, err := x.Exchange(t.Context(), "client-token", time.Time{}); err != nil || res.AccessToken != tc.token {
				t.Errorf("%.80s: %v", tc.body, err)
			}
		})
	}
}

// TestOAuthExchangeCacheBounds: the cache holds at most 4096 tokens and
// 16 MiB of them (as the README says), and is cleared whole when a token
// would pass either: the first client token is exchanged again after
// that many others, and not before. The bytes of a token replaced (its
// entry lapsed) are given back.
func TestOAuthExchangeCacheBounds(t *testing.T) {
	const maxTokens, maxBytes = 4096, 16 << 20
	big := strings.Repeat("a", oauth.DefaultMaxExchangedTokenBytes)
	exchange := func(t *testing.T, x *oauth.Exchanger, subject string) {
		t.Helper()
		if _, err := x.Exchange(t.Context(), subject, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		token  string
		others int // other client tokens that fill the cache
	}{
		{"tokens", "t", maxTokens - 1},
		{"bytes", big, maxBytes/len(big) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeTokenEndpoint(t, tokenAnswer(tc.token, 3600))
			x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, nil)
			exchange(t, x, "first")
			for i := range tc.others {
				exchange(t, x, "other-"+strconv.Itoa(i))
			}
			calls := as.calls.Load()
			exchange(t, x, "first")
			if n := as.calls.Load() - calls; n != 0 {
				t.Fatalf("the cache full to its bound: the first token exchanged again")
			}
			exchange(t, x, "one-more")
			calls = as.calls.Load()
			exchange(t, x, "first")
			if n := as.calls.Load() - calls; n != 1 {
				t.Errorf("one token past the bound: the first token was not exchanged again (the cache was not cleared)")
			}
		})
	}
	t.Run("replaced", func(t *testing.T) {
		// "lapsing" expires 1s after the margin: each step lapses it;
		// "kept" lasts an hour.
		as := newFakeTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			if r.PostForm.Get("subject_token") == "lapsing" {
				tokenAnswer(big, int((oauth.DefaultExchangeMargin+time.Second)/time.Second))(w, r)
				return
			}
			tokenAnswer("t", 3600)(w, r)
		})
		c := &clock{}
		x := newExchanger(t, as.srv.URL, oauth.ExchangeConfig{}, c.now)
		exchange(t, x, "kept")
		for range maxBytes/len(big) + 8 {
			exchange(t, x, "lapsing")
			c.advance(2 * time.Second)
		}
		calls := as.calls.Load()
		exchange(t, x, "kept")
		if n := as.calls.Load() - calls; n != 0 {
			t.Errorf("one token exchanged again and again, %d bytes each time: the cache was cleared, as if the bytes of those replaced stayed counted", len(big))
		}
	})
}

func TestOAuthExchangeConfig(t *testing.T) {
	v, err := oauth.NewVerifier(oauth.Config{Issuer: "https://auth.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg     oauth.ExchangeConfig
		wantErr string
	}{
		{oauth.ExchangeConfig{ClientSecret: "s", Resource: "https://d.example"}, "client_id"},
		{oauth.ExchangeConfig{ClientID: "c", ClientSecret: "s"}, "resource or an audience"},
		{oauth.ExchangeConfig{ClientID: "c", ClientSecret: "s", Resource: "/api"}, "not an absolute URI"},
		{oauth.ExchangeConfig{ClientID: "c", ClientSecret: "s", Audience: "api"}, ""},
	} {
		_, err := v.NewExchanger(tc.cfg)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.wantErr)
		}
	}
}
