package servertest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/scangate/scangate/internal/api"
)

// The shared test client checks every request it sends under /api/v1 and
// every answer it gets against the API's OpenAPI document, so that the
// document and the server cannot drift apart in any test that uses it.

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

func openAPIDoc() (*openapi3.T, error) {
	docOnce.Do(func() {
		doc, docErr = openapi3.NewLoader().LoadFromData(api.OpenAPI())
		if docErr == nil {
			docErr = doc.Validate(context.Background())
		}
	})
	return doc, docErr
}

// CheckOpenAPI checks a request to the server at addr and its answer
// (status, headers, body) against the OpenAPI document, failing the test
// where they differ. Paths outside /api/v1 are not the API's and pass.
func CheckOpenAPI(t testing.TB, addr string, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if len(req.URL.Path) < 8 || req.URL.Path[:8] != "/api/v1/" {
		return
	}
	d, err := openAPIDoc()
	if err != nil {
		t.Fatalf("the API's openapi.yaml is not valid OpenAPI: %v", err)
	}
	// A router per server: the document's servers are that address.
	cp := *d
	cp.Servers = openapi3.Servers{{URL: "http://" + addr}}
	router, err := legacy.NewRouter(&cp)
	if err != nil {
		t.Fatal(err)
	}
	check := req.Clone(context.Background())
	check.Body = io.NopCloser(bytes.NewReader(reqBody))
	check.URL.Scheme, check.URL.Host = "http", addr
	route, params, err := router.FindRoute(check)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound {
			return // a path the API does not serve, answered so
		}
		t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s answered %d, not as openapi.yaml says: %v\n%.2000s", req.Method, req.URL.Path, resp.StatusCode, err, respBody)
	}
}
