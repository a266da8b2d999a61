// Command app is the test app of internal/apptest: a static HTTP server
// whose behaviour is set by its environment, run in containers by the
// engine and deploy tests (there is no Docker Hub to pull a real one from).
//
//	PORT        the port to listen on (default 8080)
//	MESSAGE     the body of GET / (default "hello from apptest")
//	EXIT_AFTER  exit after this long (a Go duration; "0s": at once, before listening)
//	EXIT_CODE   the code to exit with then (default 0)
//	UNHEALTHY   "1": GET /health answers 500
//	ALLOC_MIB   allocate and touch this many MiB at start (to meet a memory limit)
//
// Routes: GET / (MESSAGE), GET /health (200 "ok", or 500), GET
// /sleep?d=DURATION (answers after DURATION, for in-flight requests). Each
// request logs a line to stdout, as does the start; exits log to stderr.
// SIGTERM or SIGINT stops it gracefully: requests in flight finish, then it
// exits 0.
//
// `app probe URL` is its health check (images have no curl): it exits 0 if
// a GET of URL answers 2xx within 5 s, 1 otherwise, printing what it got.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// ballast keeps ALLOC_MIB's memory alive.
var ballast []byte

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: app probe URL")
			os.Exit(2)
		}
		os.Exit(probe(os.Args[2]))
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "app: unknown arguments %q (usage: app, or app probe URL)\n", os.Args[1:])
		os.Exit(2)
	}
	os.Exit(serve())
}

// probe GETs url and says whether it answered 2xx.
func probe(url string) int {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Printf("probe %s: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	fmt.Printf("probe %s: %s %s\n", url, resp.Status, body)
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

func serve() int {
	port := env("PORT", "8080")
	message := env("MESSAGE", "hello from apptest")
	code, err := strconv.Atoi(env("EXIT_CODE", "0"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "app: EXIT_CODE: %v\n", err)
		return 2
	}
	var exitAfter <-chan time.Time
	if s := os.Getenv("EXIT_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "app: EXIT_AFTER: %v\n", err)
			return 2
		}
		if d <= 0 {
			fmt.Printf("app: started, exiting at once with code %d\n", code)
			fmt.Fprintf(os.Stderr, "app: exiting with code %d (EXIT_AFTER=%s)\n", code, s)
			return code
		}
		exitAfter = time.After(d)
	}
	if s := os.Getenv("ALLOC_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "app: ALLOC_MIB: %q is not a number of MiB\n", s)
			return 2
		}
		fmt.Printf("app: allocating %d MiB\n", n)
		ballast = make([]byte, n<<20)
		for i := range ballast {
			if i%4096 == 0 {
				ballast[i] = 1
			}
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, message)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("UNHEALTHY") == "1" {
			http.Error(w, "unhealthy (UNHEALTHY=1)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, "d: "+err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(d)
		fmt.Fprintf(w, "slept %s\n", d)
	})
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintf(os.Stderr, "app: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: logRequests(mux), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("app: listening on %s\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-stop:
		fmt.Printf("app: %s: finishing requests in flight\n", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "app: shutdown: %v\n", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "app: stopped gracefully")
		return 0
	case <-exitAfter:
		fmt.Fprintf(os.Stderr, "app: exiting with code %d (EXIT_AFTER=%s)\n", code, os.Getenv("EXIT_AFTER"))
		return code
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "app: %v\n", err)
		}
		return 1
	}
}

// logRequests logs a line per request: method, path, status.
func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		fmt.Printf("app: %s %s %d\n", r.Method, r.URL.RequestURI(), rec.status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
