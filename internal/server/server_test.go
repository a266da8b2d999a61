package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
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
