package feed

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/scangate/scangate/internal/vulndb"
)

// Distribution sources that are not one file: Red Hat publishes its VEX
// documents as a dated tar.zst that archive_latest.txt names, and Amazon
// Linux its updateinfo in a repository that a mirror list names.

// fetchRedHatVEX downloads src.URL (archive_latest.txt, beside the archive),
// then the archive it names, and unpacks its JSON documents into f.Dir. The
// archive's name is the validator: an unchanged name is an unchanged feed.
func (f *Fetcher) fetchRedHatVEX(ctx context.Context, src Source, last vulndb.Download) (Fetched, error) {
	name, err := f.getSmall(ctx, src.URL, src.Name)
	if err != nil {
		return Fetched{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, "/\\ \t") || !strings.HasSuffix(name, ".tar.zst") {
		return Fetched{}, fmt.Errorf("archive_latest.txt names %q, not a .tar.zst beside it", clipMsg(name))
	}
	d := vulndb.Download{URL: src.URL, ETag: name}
	if last.ETag == name {
		return Fetched{Source: src, Download: last}, nil
	}
	u, err := url.Parse(src.URL)
	if err != nil {
		return Fetched{}, err
	}
	u.Path = path.Join(path.Dir(u.Path), name)
	archive := filepath.Join(f.Dir, "redhat-vex.tar.zst")
	if _, err := f.get(ctx, u.String(), http.Header{}, archive, src.Name); err != nil {
		return Fetched{}, err
	}
	dir := filepath.Join(f.Dir, "redhat-vex")
	if err := untarZstd(archive, dir, DefaultLimits); err != nil {
		return Fetched{}, fmt.Errorf("%s: %w", name, err)
	}
	os.Remove(archive)
	return Fetched{Source: src, Paths: []string{dir}, Download: d}, nil
}

// untarZstd unpacks the regular .json files of a tar.zst into dir, flat
// (paths from the archive never choose where a file lands), within limits.
func untarZstd(archive, dir string, lim Limits) error {
	in, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := zstd.NewReader(in, zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return err
	}
	defer zr.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var total int64
	for n := 0; ; {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") || !filepath.IsLocal(h.Name) {
			// Red Hat's archive holds year folders of documents; a name
			// that climbs out or is absolute is not one of them.
			continue
		}
		if n++; n > lim.MaxFiles {
			return fmt.Errorf("more than %d files: %w", lim.MaxFiles, ErrLimit)
		}
		if h.Size > lim.MaxFileBytes {
			return fmt.Errorf("%s: %d bytes: %w", clipMsg(h.Name), h.Size, ErrLimit)
		}
		if total += h.Size; total > lim.MaxTotalBytes {
			return fmt.Errorf("archive larger than %d bytes: %w", lim.MaxTotalBytes, ErrLimit)
		}
		out, err := os.Create(filepath.Join(dir, fmt.Sprintf("%07d-%s", n, path.Base(h.Name))))
		if err != nil {
			return err
		}
		_, err = io.Copy(out, io.LimitReader(tr, h.Size))
		if err := errors.Join(err, out.Close()); err != nil {
			return err
		}
	}
}

// fetchAmazon reads src.URL, a repository's mirror.list, takes its first
// mirror, finds updateinfo in the mirror's repodata/repomd.xml, and
// downloads it conditionally.
func (f *Fetcher) fetchAmazon(ctx context.Context, src Source, last vulndb.Download) (Fetched, error) {
	list, err := f.getSmall(ctx, src.URL, src.Name)
	if err != nil {
		return Fetched{}, err
	}
	mirror, _, _ := strings.Cut(strings.TrimSpace(list), "\n")
	mirror = strings.TrimSpace(mirror)
	mu, err := url.Parse(mirror)
	if err != nil || (mu.Scheme != "https" && mu.Scheme != "http") {
		return Fetched{}, fmt.Errorf("mirror list names %q, not a URL", clipMsg(mirror))
	}
	repomd, err := f.getSmall(ctx, strings.TrimSuffix(mirror, "/")+"/repodata/repomd.xml", src.Name)
	if err != nil {
		return Fetched{}, err
	}
	var md struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal([]byte(repomd), &md); err != nil {
		return Fetched{}, fmt.Errorf("repomd.xml: %w", err)
	}
	for _, d := range md.Data {
		if d.Type == "updateinfo" && d.Location.Href != "" && !strings.Contains(d.Location.Href, "..") {
			u := strings.TrimSuffix(mirror, "/") + "/" + strings.TrimPrefix(d.Location.Href, "/")
			got, err := f.fetchFile(ctx, Source{Name: src.Name, URL: u}, last)
			got.Source, got.Download.URL = src, src.URL
			return got, err
		}
	}
	return Fetched{}, errors.New("repomd.xml lists no updateinfo")
}

// getSmall downloads a small text file (a mirror list, archive_latest.txt).
func (f *Fetcher) getSmall(ctx context.Context, u, name string) (string, error) {
	p := filepath.Join(f.Dir, "small-"+safeName(u))
	if _, err := f.get(ctx, u, http.Header{}, p, name); err != nil {
		return "", err
	}
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	var b strings.Builder
	sc := bufio.NewScanner(io.LimitReader(fh, 1<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}
