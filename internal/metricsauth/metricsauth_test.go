package metricsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

type authn func(*http.Request) (*authenticator.Response, bool, error)

func (f authn) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	return f(r)
}

type authz func(authorizer.Attributes) (authorizer.Decision, string, error)

func (f authz) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	return f(a)
}

var prom = &authenticator.Response{User: &user.DefaultInfo{Name: "system:serviceaccount:monitoring:prometheus"}}

func TestFilterAnswers(t *testing.T) {
	allow := authz(func(a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetVerb() == "get" && a.GetPath() == "/metrics" && a.GetUser().GetName() == prom.User.GetName() {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "no rule", nil
	})
	ok := authn(func(*http.Request) (*authenticator.Response, bool, error) { return prom, true, nil })
	for _, tc := range []struct {
		name   string
		header string
		method string
		a      authn
		z      authz
		want   int
	}{
		{"no token, no API call", "", "GET", nil, nil, http.StatusUnauthorized},
		{"basic auth, no API call", "Basic eDp5", "GET", nil, nil, http.StatusUnauthorized},
		{"rejected token", "Bearer forged", "GET", authn(func(*http.Request) (*authenticator.Response, bool, error) {
			return nil, false, errors.New("[invalid bearer token]")
		}), nil, http.StatusUnauthorized},
		{"unknown token", "Bearer x", "GET", authn(func(*http.Request) (*authenticator.Response, bool, error) { return nil, false, nil }), nil, http.StatusUnauthorized},
		{"no reader role", "Bearer t", "GET", ok, authz(func(authorizer.Attributes) (authorizer.Decision, string, error) {
			return authorizer.DecisionNoOpinion, "", nil
		}), http.StatusForbidden},
		{"reader, but a POST", "Bearer t", "POST", ok, allow, http.StatusForbidden},
		{"review failed", "Bearer t", "GET", ok, authz(func(authorizer.Attributes) (authorizer.Decision, string, error) {
			return authorizer.DecisionNoOpinion, "", errors.New("connection refused")
		}), http.StatusServiceUnavailable},
		{"reader", "Bearer t", "GET", ok, allow, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, z := tc.a, tc.z
			if a == nil {
				a = func(*http.Request) (*authenticator.Response, bool, error) {
					t.Error("the authenticator was asked")
					return nil, false, nil
				}
			}
			if z == nil {
				z = func(authorizer.Attributes) (authorizer.Decision, string, error) {
					t.Error("the authorizer was asked")
					return authorizer.DecisionDeny, "", nil
				}
			}
			h, err := Filter(a, z)(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) }))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, "/metrics", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want != http.StatusOK && rec.Body.String() == "m 1\n" {
				t.Error("a refused scrape got the metrics")
			}
		})
	}
}

// TestFilterBoundsChecks holds maxChecks reviews in flight: the next scrape
// is told to come back (429) instead of adding a review for the API server.
func TestFilterBoundsChecks(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, maxChecks)
	a := authn(func(*http.Request) (*authenticator.Response, bool, error) {
		started <- struct{}{}
		<-release
		return nil, false, nil
	})
	z := authz(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	h, err := Filter(a, z)(logr.Discard(), http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	var wg sync.WaitGroup
	codes := make(chan int, maxChecks)
	for range maxChecks {
		wg.Go(func() { codes <- scrape() })
	}
	for range maxChecks {
		<-started
	}
	if got := scrape(); got != http.StatusTooManyRequests {
		t.Errorf("scrape beyond %d checks in flight: %d, want 429", maxChecks, got)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("held scrape answered %d, want 401", c)
		}
	}
}
