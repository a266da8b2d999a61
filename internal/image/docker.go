package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/moby/moby/client"
)

// openDocker saves an image from the local Docker Engine (DOCKER_HOST, else
// the default socket) to a temporary docker-archive and opens that.
func openDocker(ctx context.Context, ref string, opts Options) (*Image, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	defer cli.Close()
	rc, err := cli.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(opts.TempDir, "scangate-docker-*.tar")
	if err != nil {
		return nil, err
	}
	cleanup := func() error { return os.Remove(f.Name()) }
	max := opts.MaxArchiveBytes
	if max <= 0 {
		max = defaultMaxArchiveBytes
	}
	n, err := io.Copy(f, io.LimitReader(rc, max+1))
	err = errors.Join(err, f.Close())
	if err == nil && n > max {
		err = fmt.Errorf("docker: image %s is larger than %d bytes", ref, max)
	}
	if err != nil {
		return nil, errors.Join(err, cleanup())
	}
	img, err := openDockerArchive(f.Name())
	if err != nil {
		return nil, errors.Join(err, cleanup())
	}
	closeArchive := img.cleanup
	img.cleanup = func() error { return errors.Join(closeArchive(), cleanup()) }
	return img, nil
}
