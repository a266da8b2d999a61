package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/server"
)

func newServerCmd(g *globals) *cobra.Command {
	var cfg server.Config
	var configFile, severity string
	var rescanDays, eventDays, executionDays, deadLetterDays int
	var proxies, allowPrivate []string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the registry, scanner, event bus and API (local: over the data folder)",
		Long: `Server runs scangate's service on one address (127.0.0.1:5000 by default):

  /v2/           the OCI registry (docker push/pull; tokens as the password)
  /git/NAME.git  hosted git repositories (clone, push; tokens as the password)
  /hooks/git     push webhooks of GitHub, GitLab and Gitea, for external sources
  /api/v1/       the REST API (Bearer tokens; /api/v1/openapi.yaml describes it)
  /healthz       200 while the process runs
  /readyz        200 once the server can serve
  /metrics       Prometheus metrics (any valid token, unless --metrics-public)

With --tls-cert and --tls-key the server speaks HTTPS (HTTP/2 and HTTP/1.1)
and reads both files again on SIGHUP. Without them it serves plain HTTP on
loopback addresses only, unless --insecure-plaintext; behind a reverse
proxy, name it with --trusted-proxies so that its X-Forwarded-* headers are
believed (nobody else's are).

Every manifest pushed is scanned once; the result goes out as a Scan event,
routed by rules to webhooks. A push to a pipeline's branch starts an
execution: the commit is built on the Docker Engine (DOCKER_HOST, else the
local socket), pushed to the registry, scanned, and held at the approval
stage until the policy or a person decides. When the vulnerability database changes
(db update, db import) the images pushed or pulled within --rescan-days are
matched again from their stored inventories.

Settings come from flags, then SCANGATE_<FLAG> variables, then the YAML file
--config (default: scangate.yaml in the data folder, if there is one), whose
keys are the flag names. SIGINT or SIGTERM drains: new requests are refused,
running requests and jobs get --shutdown-timeout to finish, and jobs cut
short run again at the next start.` + localHelp,
		Example: `  scangate token create --name admin --role admin
  scangate server --addr 127.0.0.1:5000
  docker login 127.0.0.1:5000 -u ci -p "$TOKEN" && docker push 127.0.0.1:5000/app:1`,
		Args: args(cobra.NoArgs),
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigFile(cmd, configFile, g.dataDir); err != nil {
				return usageError{err}
			}
			order, err := scan.ParseSeverityOrder(severity)
			if err != nil {
				return usageError{err}
			}
			if rescanDays < 1 {
				return usageError{errors.New("--rescan-days: at least 1")}
			}
			cfg.SeverityOrder = order
			cfg.RescanWindow = time.Duration(rescanDays) * 24 * time.Hour
			for flag, days := range map[string]int{"event-retention-days": eventDays, "execution-retention-days": executionDays, "dead-letter-retention-days": deadLetterDays} {
				if days < 1 {
					return usageError{fmt.Errorf("--%s: at least 1", flag)}
				}
			}
			cfg.Retention.Events = time.Duration(eventDays) * 24 * time.Hour
			cfg.Retention.Executions = time.Duration(executionDays) * 24 * time.Hour
			cfg.Retention.DeadLetters = time.Duration(deadLetterDays) * 24 * time.Hour
			if cfg.TrustedProxies, err = server.ParseProxies(proxies); err != nil {
				return usageError{fmt.Errorf("--trusted-proxies: %w", err)}
			}
			if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
				return usageError{errors.New("--tls-cert and --tls-key go together")}
			}
			if cfg.AllowPrivateTargets, err = egress.ParseAllow(allowPrivate); err != nil {
				return usageError{err}
			}
			if cfg.RegistryHost != "" {
				if err := server.CheckRegistryHost(cfg.RegistryHost); err != nil {
					return usageError{fmt.Errorf("--registry-host: %w", err)}
				}
			}
			if err := registry.CheckSettings(cfg.RegistryStorage, cfg.RegistrySecret, cfg.RegistryCache); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.DataDir, cfg.Database = g.dataDir, g.database
			cfg.Logger = g.log
			if err := server.Run(cmd.Context(), cfg); err != nil {
				return internalError{err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file of settings, keyed by flag name (default: DATA_DIR/scangate.yaml if it exists)")
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:5000", "address to listen on")
	f.IntVar(&cfg.ScanConcurrency, "scan-concurrency", 2, "scans run at once")
	layerCacheFlag(cmd, &cfg.LayerCacheBytes)
	f.IntVar(&cfg.BuildConcurrency, "build-concurrency", 2, "pipeline builds run at once")
	f.StringSliceVar(&cfg.BuildRegistries, "build-registries", nil, "registries (host[:port], or host[:port]/prefix) a build's FROM may name besides scangate's own; bases are pulled by digest")
	f.BoolVar(&cfg.AnonymousPull, "anonymous-pull", false, "let clients without a token pull images")
	f.IntVar(&rescanDays, "rescan-days", 30, "re-evaluate images pushed or pulled within this many days when the database changes")
	f.DurationVar(&cfg.DeliveryRetryWindow, "delivery-retry-window", 24*time.Hour, "retry failing webhook deliveries this long, then dead-letter them")
	f.IntVar(&cfg.MaxCatalog, "max-catalog-entries", 1000, "most repositories in one page of /v2/_catalog")
	f.IntVar(&cfg.MaxTags, "max-tags", 1000, "most tags in one page of a tag list")
	f.StringVar(&severity, "severity-source", "nvd", "whose rating counts first: nvd or vendor")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a stop waits for requests and jobs")
	f.StringSliceVar(&cfg.DenyRejectedPulls, "deny-rejected-pulls", nil, "repositories (patterns such as shop/*; * for all) whose rejected images only admins may pull")
	f.DurationVar(&cfg.TaskRetention, "task-retention", 24*time.Hour, "keep stopped tasks (stop code, reason, exit codes, last log lines) this long")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (with its chain) to serve HTTPS with; read again on SIGHUP")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert; read again on SIGHUP")
	f.BoolVar(&cfg.InsecurePlaintext, "insecure-plaintext", false, "allow plain HTTP on an address that is not loopback (tokens then cross the network in clear text)")
	f.StringSliceVar(&proxies, "trusted-proxies", nil, "addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For/-Proto/-Host are believed")
	f.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without a token")
	lim := &cfg.Limits
	f.DurationVar(&lim.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time for a TLS handshake and a request's headers")
	f.DurationVar(&lim.ReadTimeout, "read-timeout", time.Minute, "time for an API request's body; for registry and git bodies, for each read")
	f.DurationVar(&lim.WriteTimeout, "write-timeout", time.Minute, "time for an API response; for blobs, packs and log streams, for each write")
	f.DurationVar(&lim.IdleTimeout, "idle-timeout", 2*time.Minute, "close a kept-alive connection idle this long")
	f.IntVar(&lim.MaxConnections, "max-connections", 1000, "connections open at once; at the cap the oldest one not serving a request is closed")
	f.IntVar(&lim.MaxSpooledBodies, "max-spooled-bodies", 4, "git push bodies written to disk at once; more are answered 503")
	f.Int64Var(&lim.MaxGitRequestBytes, "max-git-request-bytes", 4<<20, "largest body of a clone's or fetch's request")
	f.StringVar(&cfg.RegistryHost, "registry-host", "", "the registry's name (host[:port]) that builds push to, the Docker Engine pulls task images from and events name: with replicas, the load balancer's, the same on each (default: the address listened on) (env SCANGATE_REGISTRY_HOST)")
	f.StringVar(&cfg.RegistryStorage, "registry-storage", "", "where the registry keeps images: empty for DATA_DIR/registry, an absolute path of a shared folder, or s3://BUCKET[/PREFIX]?region=R&endpoint=URL&force-path-style=true (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) (env SCANGATE_REGISTRY_STORAGE)")
	f.StringVar(&cfg.RegistrySecret, "registry-secret", "", "secret that signs uploads in progress, the same on every replica (required with shared storage; default: one kept in DATA_DIR/registry) (env SCANGATE_REGISTRY_SECRET, better than the command line)")
	f.StringVar(&cfg.RegistryCache, "registry-cache", "none", "the registry's blob-descriptor cache: none, inmemory (not with shared storage) or redis://HOST:PORT/DB (env SCANGATE_REGISTRY_CACHE)")
	f.Int64Var(&lim.RepositoryQuota, "repository-quota", 20<<30, "most bytes a registry repository holds (layers and uploads in progress)")
	f.IntVar(&lim.AuthFailures, "auth-failures", 10, "failed authentications a client may make at once before it must wait")
	f.DurationVar(&lim.AuthFailureInterval, "auth-failure-interval", 6*time.Second, "a client earns one failed authentication back this often")
	f.IntVar(&eventDays, "event-retention-days", 90, "keep logged events this many days (those of dead letters stay with them)")
	f.IntVar(&executionDays, "execution-retention-days", 180, "keep ended pipeline executions this many days (those whose approval decided stay, without their build log)")
	f.IntVar(&deadLetterDays, "dead-letter-retention-days", 30, "keep dead letters this many days")
	f.StringSliceVar(&allowPrivate, "allow-private-targets", nil, "prefixes (127.0.0.0/8, 10.1.0.0/16, fd00::/8) of loopback, link-local or private addresses webhooks and external git sources may reach (default none)")
	return cmd
}

// applyConfigFile sets the flags neither the command line nor the
// environment set from a YAML file of flag names and values.
func applyConfigFile(cmd *cobra.Command, path, dataDir string) error {
	explicit := path != ""
	if !explicit {
		path = dataDir + string(os.PathSeparator) + "scangate.yaml"
	}
	data, err := readSmallFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var settings map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&settings); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var errs []string
	for key, v := range settings {
		f := cmd.Flags().Lookup(key)
		if f == nil || key == "config" {
			errs = append(errs, fmt.Sprintf("unknown setting %q", key))
			continue
		}
		if f.Changed {
			continue
		}
		if err := setFlag(cmd.Flags(), f, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", key, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config %s: %s", path, strings.Join(errs, "; "))
	}
	return nil
}

func setFlag(fs *pflag.FlagSet, f *pflag.Flag, v any) error {
	switch v := v.(type) {
	case map[string]any, []any:
		return errors.New("want a single value")
	case nil:
		return errors.New("no value")
	default:
		return fs.Set(f.Name, fmt.Sprint(v))
	}
}
