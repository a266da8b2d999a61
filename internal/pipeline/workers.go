package pipeline

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/scangate/scangate/internal/jobs"
)

// Queue is the River queue builds run on; its worker count is the build
// concurrency.
const Queue = "build"

// buildAttempts is how often a build is tried: a second try covers a
// server that died mid-build; a build that fails on its own fails twice.
const buildAttempts = 2

type buildArgs struct {
	ExecutionID string `json:"execution_id"`
}

func (buildArgs) Kind() string { return "pipeline_build" }

func (buildArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: buildAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type buildWorker struct {
	river.WorkerDefaults[buildArgs]
	s *Service
}

func (w *buildWorker) Timeout(*river.Job[buildArgs]) time.Duration { return time.Hour }

func (w *buildWorker) Work(ctx context.Context, job *river.Job[buildArgs]) error {
	err := w.work(ctx, job)
	if err == nil || ctx.Err() != nil || job.Attempt < job.MaxAttempts {
		return err
	}
	// River discards a job that fails its last attempt: the execution must
	// not wait for a build that will never run again.
	ex, lerr := loadExecution(ctx, w.s.st.Reader(), job.Args.ExecutionID)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	if ferr := w.s.failBuild(ctx, job, ex, err, ""); ferr != nil {
		return errors.Join(err, ferr)
	}
	return nil
}

func (w *buildWorker) work(ctx context.Context, job *river.Job[buildArgs]) error {
	s := w.s
	ex, err := loadExecution(ctx, s.st.Reader(), job.Args.ExecutionID)
	if err != nil {
		return err
	}
	if building, err := s.building(ctx, s.st.Reader(), ex); err != nil || !building {
		return err // stopped or superseded while it waited, or built already
	}
	d, err := getDefinition(ctx, s.st.Reader(), ex.Pipeline, ex.Version)
	if err != nil {
		return err
	}
	if err := unsealDefinition(s.keys(), d); err != nil {
		return err
	}
	hide := hider(d)
	log := &cappedLog{max: s.opts.MaxLog, hide: hide}
	res, err := s.build(ctx, ex, d, log)
	if err != nil {
		// The error may carry the log's tail, which a RUN step may have
		// printed a secret arg into.
		err = hiddenError{hide(err.Error()), err}
		if ctx.Err() != nil || (job.Attempt < job.MaxAttempts && errors.Is(err, ErrRetry)) {
			return err // stopping, or worth another try
		}
		return s.failBuild(ctx, job, ex, err, log.String())
	}
	return s.finishBuild(ctx, job, ex, func(tx *sql.Tx, cur *Execution) error {
		if _, err := tx.ExecContext(ctx, `UPDATE executions SET image_digest = $1, image_uri = $2, artifact = $3, build_log = $4 WHERE id = $5`,
			res.Digest, res.ImageURI, string(res.ImageDefinitions), log.String(), ex.ID); err != nil {
			return err
		}
		cur.ImageDigest, cur.ImageURI = res.Digest, res.ImageURI
		if err := s.setStage(ctx, tx, cur, StageBuild, StateSucceeded, res.ImageURI); err != nil {
			return err
		}
		return s.requestApproval(ctx, tx, cur, d, d.Build.Repository, res.Digest)
	})
}

// building reports whether ex is in progress at its Build stage.
func (s *Service) building(ctx context.Context, q querier, ex *Execution) (bool, error) {
	if ex.Status != StateInProgress {
		return false, nil
	}
	var status string
	err := q.QueryRowContext(ctx, `SELECT status FROM stages WHERE execution_id = $1 AND name = $2`, ex.ID, StageBuild).Scan(&status)
	return status == StateInProgress, err
}

// ErrRetry marks the errors of a Source or Builder worth another attempt
// (the source could not be read, the engine could not be reached); other
// build errors fail the stage at once.
var ErrRetry = errors.New("worth a retry")

func (s *Service) build(ctx context.Context, ex *Execution, d *Definition, log io.Writer) (BuildResult, error) {
	if s.opts.Source == nil || s.opts.Builder == nil {
		return BuildResult{}, fmt.Errorf("%w: this process cannot build", ErrRetry)
	}
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	var archiveErr error
	go func() {
		defer wg.Done()
		archiveErr = s.opts.Source.Archive(ctx, d.Source, ex.Commit, pw)
		pw.CloseWithError(archiveErr)
	}()
	ctxReader := io.Reader(pr)
	if c := path.Clean(d.Build.Context); c != "." {
		ctxReader = subTree(pr, c)
	}
	res, err := s.opts.Builder.Build(ctx, BuildRequest{
		Context:    ctxReader,
		Dockerfile: d.Build.Dockerfile,
		Args:       d.Build.AllArgs(),
		Repository: d.Build.Repository,
		Network:    d.Build.Network,
		Tags:       []string{ex.Commit}, // the promote tag waits for the approval
		Container:  container(d),
		Log:        log,
	})
	pr.CloseWithError(io.ErrClosedPipe) // let the archiver stop if the build did not read it all
	wg.Wait()
	if archiveErr != nil && !errors.Is(archiveErr, io.ErrClosedPipe) {
		return BuildResult{}, fmt.Errorf("%w: source %.12s: %v", ErrRetry, ex.Commit, archiveErr)
	}
	return res, err
}

func container(d *Definition) string {
	if d.Deploy != nil && d.Deploy.Container != "" {
		return d.Deploy.Container
	}
	return d.Name
}

// finishBuild records a build's outcome with fn, in the transaction that
// completes its job: a server killed in between would otherwise build again
// and ask for a second approval. Nothing is recorded for an execution no
// longer at its Build stage.
func (s *Service) finishBuild(ctx context.Context, job *river.Job[buildArgs], ex *Execution, fn func(*sql.Tx, *Execution) error) error {
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job); err != nil {
			return err
		}
		cur, err := loadExecution(ctx, tx, ex.ID)
		if err != nil {
			return err
		}
		if building, err := s.building(ctx, tx, cur); err != nil || !building {
			return err
		}
		return fn(tx, cur)
	})
}

func (s *Service) failBuild(ctx context.Context, job *river.Job[buildArgs], ex *Execution, cause error, log string) error {
	return s.finishBuild(ctx, job, ex, func(tx *sql.Tx, cur *Execution) error {
		if _, err := tx.ExecContext(ctx, `UPDATE executions SET build_log = $1 WHERE id = $2`, log, ex.ID); err != nil {
			return err
		}
		return s.endExecution(ctx, tx, cur, StateFailed, StateFailed, "build failed: "+cause.Error())
	})
}

// subTree rewrites a tar stream to the entries under dir, made relative to
// it: the build context of a pipeline whose context is a folder.
func subTree(r io.Reader, dir string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		prefix := strings.TrimSuffix(dir, "/") + "/"
		for {
			h, err := tr.Next()
			if err == io.EOF {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			name := strings.TrimPrefix(path.Clean(h.Name), "./")
			rel, ok := strings.CutPrefix(name, prefix)
			if !ok || rel == "" {
				continue
			}
			h.Name = rel
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// cappedLog keeps the last max bytes written to it, with hide applied.
type cappedLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped bool
	hide    func(string) string
}

func (l *cappedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if over := l.buf.Len() - l.max; over > 0 {
		l.buf.Next(over)
		l.dropped = true
	}
	return len(p), nil
}

func (l *cappedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	hide := l.hide
	if hide == nil {
		hide = func(s string) string { return s }
	}
	if l.dropped {
		// Whole lines only: a cut one could start with the end of a
		// secret, which hide would not know.
		text := l.buf.String()
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
		return "[earlier lines dropped]\n" + hide(text)
	}
	return hide(l.buf.String())
}

type evaluateArgs struct {
	ApprovalID string `json:"approval_id"`
}

func (evaluateArgs) Kind() string { return "pipeline_evaluate" }

func (evaluateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: jobs.WaitingStates}}
}

type evaluateWorker struct {
	river.WorkerDefaults[evaluateArgs]
	s *Service
}

func (w *evaluateWorker) Work(ctx context.Context, job *river.Job[evaluateArgs]) error {
	return w.s.Evaluate(ctx, job.Args.ApprovalID)
}

type expireArgs struct {
	ApprovalID string `json:"approval_id"`
}

func (expireArgs) Kind() string { return "pipeline_expire_approval" }

type expireWorker struct {
	river.WorkerDefaults[expireArgs]
	s *Service
}

func (w *expireWorker) Work(ctx context.Context, job *river.Job[expireArgs]) error {
	return w.s.expire(ctx, job.Args.ApprovalID)
}
