package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/store"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Rotate the key that seals the secrets kept in the database (local: the data folder)", Long: "Key works on the data folder (--data-dir) on the server's machine, with the server running or not." + localHelp}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new key current, seal every stored secret again under it, and delete the old keys",
		Long: `Rotate makes a new key in DATA_DIR/keys/ current, seals again under it every
secret the database keeps (webhook URLs and secrets, the credentials and
webhook secrets of external sources, secret build args, in every version of
every pipeline) in one transaction, and then deletes the old keys. It may run
while the server runs: the server seals with the newest key it finds and
opens values with whichever key they name. Should it stop half way, the old
keys are kept and every value still opens; run it again.

Back up the keys folder with the database: without its keys, the database's
secrets cannot be read.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withExistingStore(cmd.Context(), func(st *store.Store) error {
				keys, err := secret.OpenIn(g.dataDir)
				if err != nil {
					return internalError{err}
				}
				rot, err := keys.Rotate(cmd.Context(), st, server.Resealers()...)
				if err != nil {
					return internalError{err}
				}
				_, err = fmt.Fprintf(g.stdout, "key %d is current: %d stored secrets sealed again under it; keys retired: %v\n",
					rot.Key, rot.Resealed, rot.Retired)
				return err
			})
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}
