package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// fetcher asks the authorization server for documents, each bounded in
// bytes (a hostile or broken server cannot make us read without end) and
// in time (the client's timeout).
type fetcher struct {
	client   *http.Client
	maxBytes int64
}

// getJSON GETs url and decodes its JSON body into out.
func (f *fetcher) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	return f.do(req, out)
}

// postForm POSTs form to url, authenticated with HTTP Basic as
// clientID/secret (client_secret_basic), and decodes the JSON answer.
func (f *fetcher) postForm(ctx context.Context, url, form, clientID, secret string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(clientID, secret)
	// A redirect is not followed: the form carries a client's token
	// (introspection, exchange) and the request our credentials, and a
	// 307 would send both again wherever it points. It is answered as
	// any status other than 200.
	noRedirect := *f.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return f.doWith(&noRedirect, req, out)
}

func (f *fetcher) do(req *http.Request, out any) error { return f.doWith(f.client, req, out) }

func (f *fetcher) doWith(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		e := &statusError{method: req.Method, url: req.URL.Redacted(), status: resp.Status, code: resp.StatusCode}
		var oe struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(head, &oe) == nil {
			e.oauthError = oe.Error
		}
		return e
	}
	if resp.ContentLength > f.maxBytes {
		return fmt.Errorf("%s %s: %d bytes, more than the bound of %d", req.Method, req.URL.Redacted(), resp.ContentLength, f.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if int64(len(body)) > f.maxBytes {
		return fmt.Errorf("%s %s: more than the bound of %d bytes", req.Method, req.URL.Redacted(), f.maxBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return nil
}

// statusError is an answer other than 200: its status, and the OAuth
// error code of its body when it has one (RFC 6749 section 5.2).
type statusError struct {
	method, url, status string
	code                int
	oauthError          string
}

func (e *statusError) Error() string {
	if e.oauthError != "" {
		return fmt.Sprintf("%s %s: %s, error %s", e.method, e.url, e.status, quoteBounded(e.oauthError))
	}
	return fmt.Sprintf("%s %s: %s", e.method, e.url, e.status)
}
