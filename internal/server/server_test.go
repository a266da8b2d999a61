package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/servertest"
)

// A pushed image is scanned once: the push and the scan are in the event
// log, and the result names the fixture findings.
func TestPushIsScanned(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	img, _ := imagetest.BookwormApp(t)
	digest := s.Push(t, "shop/api:1", img)

	got := s.WaitScan(t, "shop/api", digest, 30*time.Second)
	if got.ScanStatus != "COMPLETE" {
		t.Fatalf("scan status %s (%s), want COMPLETE", got.ScanStatus, got.ScanError)
	}
	if got.Summary.Total == 0 || got.Summary.High == 0 {
		t.Errorf("summary %+v: want the fixture findings (lodash 4.17.15 has HIGH advisories)", got.Summary)
	}
	if len(got.Tags) != 1 || got.Tags[0] != "1" {
		t.Errorf("tags %v, want [1]", got.Tags)
	}

	log := waitEvents(t, s, 2)
	if log[0].Event.DetailType != events.DetailTypeImagePush || log[1].Event.DetailType != events.DetailTypeScan {
		t.Fatalf("events %s, %s; want Image Push, Scan", log[0].Event.DetailType, log[1].Event.DetailType)
	}
	var d scanner.ScanDetail
	if err := json.Unmarshal(log[1].Event.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if d.ScanStatus != scanner.StatusInitialScanComplete || d.ImageDigest != digest || d.RepositoryName != "shop/api" {
		t.Errorf("scan event %+v", d)
	}
	if d.Counts != got.Summary {
		t.Errorf("event counts %+v, stored %+v", d.Counts, got.Summary)
	}
	if want := s.Addr + "/shop/api@" + digest; len(log[1].Event.Resources) != 1 || log[1].Event.Resources[0] != want {
		t.Errorf("resources %v, want [%s]", log[1].Event.Resources, want)
	}

	status, body := s.API(t, http.MethodGet, "/api/v1/findings?image=shop/api:1", nil)
	if status != http.StatusOK {
		t.Fatalf("findings: %d %s", status, body)
	}
}

func waitEvents(t *testing.T, s *servertest.Server, n int) []events.Logged {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, err := events.ListLog(context.Background(), s.Store, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) >= n {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events logged, want %d", len(log), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A database change re-evaluates the images pushed or pulled within the
// rescan window, from their stored inventories, and leaves older ones be.
func TestReevaluationWindow(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{"debian"}})
	img, _ := imagetest.BookwormApp(t)
	recent := s.Push(t, "shop/recent:1", img)
	s.Push(t, "shop/old:1", img)
	s.Push(t, "shop/pulled:1", img)
	for _, repo := range []string{"shop/recent", "shop/old", "shop/pulled"} {
		s.WaitScan(t, repo, recent, 30*time.Second)
	}
	// Age two images past the 30-day window; pull one of them again.
	if _, err := s.Store.Writer().Exec(`UPDATE images SET pushed_at = '2020-01-01T00:00:00Z' WHERE repository IN ('shop/old', 'shop/pulled')`); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(s.Ref(t, "shop/pulled:1"), remote.WithAuth(s.Auth())); err != nil {
		t.Fatal(err)
	}

	before := len(waitEvents(t, s, 6))
	s.ImportQueued(t, "debian", "ghsa") // lodash 4.17.15 now has advisories
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]int
	for {
		got = map[string]int{}
		for _, l := range waitEvents(t, s, before)[before:] {
			var d struct {
				Status string `json:"scan-status"`
				Repo   string `json:"repository-name"`
				Found  string `json:"finding-status"`
			}
			if err := json.Unmarshal(l.Event.Detail, &d); err != nil {
				t.Fatal(err)
			}
			got[l.Event.DetailType+" "+d.Status+d.Found+" "+d.Repo]++
		}
		if got["Scan SCAN_COMPLETE shop/recent"] == 1 && got["Scan SCAN_COMPLETE shop/pulled"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events after the import: %v; want SCAN_COMPLETE for shop/recent and shop/pulled", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got["Scan SCAN_COMPLETE shop/old"] != 0 {
		t.Errorf("an image outside the rescan window was re-evaluated: %v", got)
	}
	if got["Finding CREATED shop/recent"] == 0 {
		t.Errorf("no Finding CREATED events: %v", got)
	}
	for _, im := range []string{"shop/recent", "shop/pulled"} {
		st := s.WaitScan(t, im, recent, time.Second)
		if st.Summary.High == 0 {
			t.Errorf("%s: stored counts %+v, want lodash's HIGH findings", im, st.Summary)
		}
	}
	if st := s.WaitScan(t, "shop/old", recent, time.Second); st.Summary.High != 0 {
		t.Errorf("shop/old changed: %+v", st.Summary)
	}
}

// An index is not scanned itself: each of its platforms' manifests is,
// under its own digest, and the index is listed as such.
func TestIndexScansEachPlatform(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	app, _ := imagetest.BookwormApp(t)
	arm := mutate.ConfigMediaType(app, types.DockerConfigJSON)
	cf, err := arm.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	if arm, err = mutate.ConfigFile(arm, cf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: app, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	if err := remote.WriteIndex(s.Ref(t, "multi/app:1"), idx, remote.WithAuth(s.Auth())); err != nil {
		t.Fatal(err)
	}
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []v1.Image{app, arm} {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.WaitScan(t, "multi/app", d.String(), 30*time.Second); got.ScanStatus != "COMPLETE" || got.Summary.Total == 0 {
			t.Errorf("platform %s: %s %+v", d, got.ScanStatus, got.Summary)
		}
	}
	if got := s.WaitScan(t, "multi/app", idxDigest.String(), 30*time.Second); got.ScanStatus != string(scanner.Index) {
		t.Errorf("index: status %s, want %s", got.ScanStatus, scanner.Index)
	}
}

// A tag names the manifest pushed under it last; a deleted manifest leaves
// the image list with its result and inventory.
func TestTagsMoveAndDeletesForget(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	first, _ := imagetest.BookwormApp(t)
	second := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(t, "debian", "os-release")}))
	a := s.Push(t, "shop/tags:1", first)
	s.WaitScan(t, "shop/tags", a, 30*time.Second)
	b := s.Push(t, "shop/tags:1", second)
	s.WaitScan(t, "shop/tags", b, 30*time.Second)

	tags := map[string][]string{}
	imgs, err := scanner.NewResults(s.Store).ListImages(context.Background(), "shop/tags")
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		tags[im.Digest] = im.Tags
	}
	if len(tags[a]) != 0 || len(tags[b]) != 1 || tags[b][0] != "1" {
		t.Errorf("tags after the second push: %v; want 1 on %s only", tags, b)
	}
	r, err := scanner.NewResults(s.Store).Findings(context.Background(), "shop/tags:1")
	if err != nil || r.Image.Digest != b {
		t.Fatalf("findings of shop/tags:1: %v, digest %v; want %s", err, r, b)
	}

	if err := remote.Delete(s.Ref(t, "shop/tags@"+a), remote.WithAuth(s.Auth())); err != nil {
		t.Fatal(err)
	}
	imgs, err = scanner.NewResults(s.Store).ListImages(context.Background(), "shop/tags")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Digest != b {
		t.Errorf("images after deleting %s: %+v", a, imgs)
	}
	if _, err := scan.LoadInventory(context.Background(), s.Store, a); !errors.Is(err, scan.ErrNoInventory) {
		t.Errorf("the deleted manifest's inventory: %v, want ErrNoInventory", err)
	}
}
