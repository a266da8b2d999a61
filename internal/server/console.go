package server

import (
	"net/http"

	"github.com/scangate/scangate/internal/console"
)

// console is the web console at /, over the services the API uses.
func (p *parts) console() http.Handler {
	c, err := console.New(console.Deps{Results: p.results, Tokens: p.tokens, Bus: p.bus, Pipelines: p.pipes, Heads: p.sources.head,
		Repos: p.sources.repos, Deploy: p.deploy, Images: p.reg, Logger: p.cfg.Logger.With("component", "console"),
		WriteTimeout: p.cfg.Limits.WriteTimeout})
	if err != nil {
		// The templates are embedded: only a broken build gets here,
		// which the console's tests catch.
		p.cfg.Logger.Error("console", "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the console is unavailable: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return c
}
