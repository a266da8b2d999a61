package server

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/engine/docker"
	"github.com/scangate/scangate/internal/lb"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/scanner"
)

// deployerToken names the token the engine pulls task images with: a
// server token (auth.Tokens.Server), the same on every replica sharing
// the key, so that a pull through a load balancer may reach any of them.
const deployerToken = "scangate-deployer"

// assembleDeploy makes the Docker runtime, the load balancer and the
// service controller, and routes re-evaluations to its compliance check.
func (p *parts) assembleDeploy(ctx context.Context) error {
	log := p.cfg.Logger
	_ = p.tokens.Revoke(ctx, deployerToken) // the database token of earlier versions
	secret, err := p.tokens.Server(deployerToken, auth.RoleReader, p.key)
	if err != nil {
		return err
	}
	p.runtime, err = docker.New(docker.Options{Logger: log.With("component", "docker")})
	if err != nil {
		return err
	}
	p.balancer = lb.New(lb.Options{Logger: log.With("component", "lb")})
	p.deploy = deploy.New(p.st, p.bus, deploy.Options{
		Runtimes:    map[string]engine.Runtime{deploy.RuntimeDocker: p.runtime},
		Registry:    p.host,
		Credentials: engine.Credentials{Username: deployerToken, Password: secret},
		Verdicts:    verdicts{p},
		Judge:       judge{p},
		Resolver:    tags{p.results},
		Balancer:    balancer{p.balancer},
		Retention:   p.cfg.TaskRetention,
		// Another replica's API changes what this one's controller
		// runs when it leads.
		Changes:      2 * time.Second,
		Logger:       log.With("component", "deploy"),
		OnRefusal:    p.metrics.refused,
		OnDeployment: p.metrics.deployed,
	})
	p.metrics.watchServices(p.deploy, p.balancer)
	return p.bus.Handle(deploy.ComplianceHandler, deploy.ScanPattern, p.deploy.HandleScan)
}

// verdicts are the pipeline's approvals, as admission reads them (the
// pipeline service is made after the controller, which it deploys with).
type verdicts struct{ p *parts }

func (v verdicts) Verdict(ctx context.Context, repository, digest string) (deploy.Verdict, error) {
	pv, err := v.p.pipes.Verdict(ctx, repository, digest)
	return deploy.Verdict{Scanned: pv.Scanned, ScanError: pv.ScanError, Decision: pv.Decision, Summary: pv.Summary,
		DecidedBy: pv.DecidedBy, DecidedAt: pv.DecidedAt}, err
}

// judge weighs re-evaluated images by the pipelines' policies.
type judge struct{ p *parts }

func (j judge) Judge(ctx context.Context, repository, digest string) (deploy.Judgement, bool, error) {
	pj, ok, err := j.p.pipes.Judge(ctx, repository, digest)
	if err != nil || !ok {
		return deploy.Judgement{}, ok, err
	}
	out := deploy.Judgement{Passed: pj.Passed, Summary: pj.Summary, StopAfter: pj.StopAfter, Policy: pj.Policy}
	for _, f := range pj.Failing {
		out.Failing = append(out.Failing, deploy.FindingRef{ID: f.ID, Package: f.Package, Version: f.Version, Severity: f.Severity, Fixed: f.Fixed})
	}
	return out, true, nil
}

// tags resolve the registry's tags for task definitions.
type tags struct{ r *scanner.Results }

func (t tags) Resolve(ctx context.Context, repository, tag string) (string, error) {
	return t.r.ResolveTag(ctx, repository, tag)
}

// balancer adapts the load balancer to the controller.
type balancer struct{ b *lb.Balancer }

func (b balancer) Listen(name, addr string) (net.Addr, error) { return b.b.Listen(name, addr) }
func (b balancer) Close(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.b.Close(ctx, name)
}
func (b balancer) Drain(ctx context.Context, name, id string) error {
	return b.b.Drain(ctx, name, id)
}
func (b balancer) SetTargets(name string, targets []deploy.Target) {
	out := make([]lb.Target, len(targets))
	for i, t := range targets {
		out[i] = lb.Target{ID: t.ID, Addr: t.Addr}
	}
	_ = b.b.SetTargets(name, out) // only an unknown name fails: Listen made it
}

// pullGate refuses pulls of rejected images in the repositories that ask
// for it, as Harbor's "prevent vulnerable images from running" does; nil
// when none does.
func (p *parts) pullGate() registry.PullGate {
	if len(p.cfg.DenyRejectedPulls) == 0 {
		return nil
	}
	return rejectedPulls{p}
}

type rejectedPulls struct{ p *parts }

func (g rejectedPulls) AllowPull(ctx context.Context, who registry.Puller, repository, digest string) error {
	// Admins may pull anything (to look into it), and the server's own
	// engine pulls what an admin's admission override lets run.
	if who.Role == auth.RoleAdmin || who.Token == deployerToken {
		return nil
	}
	match := false
	for _, pat := range g.p.cfg.DenyRejectedPulls {
		ok, _ := path.Match(pat, repository)
		match = match || ok || pat == "*"
	}
	if !match {
		return nil
	}
	v, err := g.p.pipes.Verdict(ctx, repository, digest)
	if err != nil {
		return fmt.Errorf("%s@%s: its verdict could not be read (%v); try again", repository, digest, err)
	}
	if v.Decision == pipeline.StateRejected {
		return fmt.Errorf("%s@%s was Rejected by the gate (%s): only admins may pull it", repository, digest, v.Summary)
	}
	return nil
}

// pipelineDeployer runs the pipelines' deploy stages on the controller.
type pipelineDeployer struct{ c *deploy.Controller }

func (d pipelineDeployer) Deploy(ctx context.Context, tx *sql.Tx, r pipeline.DeployRequest) (pipeline.DeployResult, error) {
	dep, err := d.c.Deploy(ctx, tx, deploy.Request{ExecutionID: r.ExecutionID, Cluster: r.Cluster, Service: r.Service,
		Container: r.Container, Image: r.Image, By: r.By})
	if err != nil {
		return pipeline.DeployResult{}, err
	}
	return pipeline.DeployResult{DeploymentID: dep.ID, TaskDefinition: dep.TaskDefinition}, nil
}

func (d pipelineDeployer) Trigger() { d.c.Trigger() }
