package source

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Protected branches: the branches pipelines build refuse, from tokens
// that are not admins, a push that is not a fast-forward and a deletion,
// as GitHub's protected branches do by default.
//
// Whether an update is a fast-forward needs the pushed commits, which
// exist only once receive-pack has taken the pack into its quarantine, so
// the decision is made by a pre-receive hook (hookScript) that git runs
// there. git reports a hook's refusal as "pre-receive hook declined"; the
// hook writes its reasons to a file, and the server puts them in git's
// report instead, so that the client prints
//
//	! [remote rejected] main (protected branch: force-push needs the admin role)

// hooksDir is the folder, under the root, of the hooks every hosted
// repository runs (git's core.hooksPath), so that no repository's own
// hooks folder is used.
const hooksDir = ".hooks"

// The reasons of a refusal, as git's report shows them.
const (
	reasonForcePush = "protected branch: force-push needs the admin role"
	reasonDeletion  = "protected branch: deletion needs the admin role"
	// reasonOther is given to the other refs of a push with a refused
	// one: pre-receive refuses a push whole.
	reasonOther = "not updated: another branch of this push is protected"
)

// hookScript is the pre-receive hook. SCANGATE_PROTECTED lists the full
// names of the protected refs (none for an admin's push); a refusal's ref
// and reason go to SCANGATE_REFUSALS, and to standard error, which git
// shows the client as "remote:" lines.
var hookScript = `#!/bin/sh
# Written by scangate (internal/source/protect.go) at each start; changes
# are lost. Refuses non-fast-forward updates and deletions of the refs in
# SCANGATE_PROTECTED.
[ -n "$SCANGATE_PROTECTED" ] || exit 0
status=0
while read -r old new ref; do
	case " $SCANGATE_PROTECTED " in *" $ref "*) ;; *) continue ;; esac
	reason=
	case $new in
	*[!0]*)
		case $old in
		*[!0]*)
			"$SCANGATE_GIT" merge-base --is-ancestor "$old" "$new" 2>/dev/null || reason="` + reasonForcePush + `"
			;;
		esac
		;;
	*) reason="` + reasonDeletion + `" ;;
	esac
	if [ -n "$reason" ]; then
		printf '%s\t%s\n' "$ref" "$reason" >>"$SCANGATE_REFUSALS"
		echo "scangate: $ref: $reason" >&2
		status=1
	fi
done
exit $status
`

// installHooks writes the hooks every hosted repository runs.
func installHooks(root string) error {
	dir := filepath.Join(root, hooksDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	p := filepath.Join(dir, "pre-receive")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(hookScript), 0o700); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// protectedRefs returns the full names of repo's protected branches for a
// push by tok's role: none for an admin.
func (r *Repos) protectedRefs(ctx context.Context, repo string, admin bool) ([]string, error) {
	if admin || r.opts.Protected == nil {
		return nil, nil
	}
	branches, err := r.opts.Protected(ctx, repo)
	if err != nil {
		return nil, err
	}
	refs := make([]string, 0, len(branches))
	for _, b := range branches {
		if validRef(b) == nil {
			refs = append(refs, "refs/heads/"+b)
		}
	}
	return refs, nil
}

// readRefusals reads the hook's file: a reason per refused ref.
func readRefusals(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return nil
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		if ref, reason, ok := strings.Cut(line, "\t"); ok {
			out[ref] = reason
		}
	}
	return out
}

// maxReport bounds the receive-pack answer held back to be rewritten; a
// larger one (many refs, long hook output) goes to the client as git wrote
// it, with git's own reasons.
const maxReport = 4 << 20

// reportWriter holds receive-pack's answer back while it is small, so that
// the protected branches' reasons can be put in it.
type reportWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
	passed bool // over maxReport: written through
}

func (rw *reportWriter) WriteHeader(status int) {
	if rw.status == 0 {
		rw.status = status
	}
}

func (rw *reportWriter) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if !rw.passed && rw.buf.Len()+len(b) > maxReport {
		rw.passed = true
		rw.ResponseWriter.WriteHeader(rw.status)
		if _, err := rw.ResponseWriter.Write(rw.buf.Bytes()); err != nil {
			return 0, err
		}
		rw.buf.Reset()
	}
	if rw.passed {
		return rw.ResponseWriter.Write(b)
	}
	return rw.buf.Write(b)
}

// finish writes the answer held back, with reasons in place of git's
// "pre-receive hook declined".
func (rw *reportWriter) finish(reasons map[string]string) {
	if rw.passed {
		return
	}
	body := rw.buf.Bytes()
	if len(reasons) > 0 {
		if out, err := rewriteReport(body, reasons); err == nil {
			body = out
		}
	}
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	rw.Header().Del("Content-Length")
	rw.ResponseWriter.WriteHeader(rw.status)
	_, _ = rw.ResponseWriter.Write(body)
}

// pkt-line framing (git's protocol-common documentation): four hex digits
// of length, the length counting themselves; "0000" is a flush.
const (
	pktFlush   = "0000"
	pktMaxData = 65516 - 1 // side-band-64k: a packet of 65520 bytes, the band byte one of them
)

// readPkts splits data into pkt-line payloads; a flush is nil.
func readPkts(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, fmt.Errorf("pkt-line: %d stray bytes", len(data))
		}
		n, err := strconv.ParseUint(string(data[:4]), 16, 16)
		if err != nil {
			return nil, fmt.Errorf("pkt-line length %q: %w", data[:4], err)
		}
		if n == 0 {
			out, data = append(out, nil), data[4:]
			continue
		}
		if n < 4 || int(n) > len(data) {
			return nil, fmt.Errorf("pkt-line length %d of %d bytes", n, len(data))
		}
		out, data = append(out, data[4:n]), data[n:]
	}
	return out, nil
}

func writePkt(b *bytes.Buffer, payload []byte) {
	if payload == nil {
		b.WriteString(pktFlush)
		return
	}
	fmt.Fprintf(b, "%04x", len(payload)+4)
	b.Write(payload)
}

// rewriteReport puts reasons in receive-pack's report-status: each "ng REF
// pre-receive hook declined" line takes REF's reason, or reasonOther. The
// report is in band 1 of a side-band answer (what git asks for), or the
// whole answer without one.
func rewriteReport(body []byte, reasons map[string]string) ([]byte, error) {
	pkts, err := readPkts(body)
	if err != nil {
		return nil, err
	}
	sideband := len(pkts) > 0 && len(pkts[0]) > 0 && pkts[0][0] <= 3
	if !sideband {
		var out bytes.Buffer
		for _, p := range pkts {
			writePkt(&out, rewriteStatus(p, reasons))
		}
		return out.Bytes(), nil
	}
	// Band 1 is one pkt-line stream cut into packets anywhere: gather it,
	// rewrite it, and send it again after the progress and error bands,
	// before the answer's flush.
	var report bytes.Buffer
	var out bytes.Buffer
	for _, p := range pkts {
		switch {
		case p == nil:
		case p[0] == 1:
			report.Write(p[1:])
		default:
			writePkt(&out, p)
		}
	}
	inner, err := readPkts(report.Bytes())
	if err != nil {
		return nil, err
	}
	var rewritten bytes.Buffer
	for _, p := range inner {
		writePkt(&rewritten, rewriteStatus(p, reasons))
	}
	data := rewritten.Bytes()
	for len(data) > 0 {
		n := min(len(data), pktMaxData)
		writePkt(&out, append([]byte{1}, data[:n]...))
		data = data[n:]
	}
	writePkt(&out, nil)
	return out.Bytes(), nil
}

// declined is git's reason for every ref of a push its pre-receive hook
// refused.
const declined = "pre-receive hook declined"

func rewriteStatus(p []byte, reasons map[string]string) []byte {
	line := strings.TrimSuffix(string(p), "\n")
	rest, ok := strings.CutPrefix(line, "ng ")
	if !ok || p == nil {
		return p
	}
	ref, why, _ := strings.Cut(rest, " ")
	if why != declined {
		return p
	}
	reason, ok := reasons[ref]
	if !ok {
		reason = reasonOther
	}
	return []byte("ng " + ref + " " + reason + "\n")
}
