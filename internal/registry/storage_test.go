package registry

import (
	"strings"
	"testing"
)

func TestParseStorage(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Storage
	}{
		{"", Storage{Kind: StorageLocal, Path: "/data/registry"}},
		{"/srv/shared/registry/", Storage{Kind: StorageFilesystem, Path: "/srv/shared/registry"}},
		{"s3://images?region=eu-west-1", Storage{Kind: StorageS3, Bucket: "images", Region: "eu-west-1"}},
		{"s3://images/a/b/?endpoint=http://127.0.0.1:9000&force-path-style=true",
			Storage{Kind: StorageS3, Bucket: "images", Prefix: "a/b", Region: "us-east-1", Endpoint: "http://127.0.0.1:9000", ForcePathStyle: true}},
	} {
		got, err := ParseStorage(c.in, "/data/registry")
		if err != nil || got != c.want {
			t.Errorf("ParseStorage(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{
		"relative/path", "s3://", "s3://UPPER?region=x", "s3://b?region=eu-west-1", "gs://bucket",
		"s3://bucket?colour=red&region=r", "s3://bucket", "s3://bucket?endpoint=ftp://x",
		"s3://bucket?region=a&region=b", "s3://bucket?region=r&force-path-style=maybe",
		"s3://AKIAKEY:hunter2-secret@bucket?region=r", "s3://bucket?endpoint=http://AKIAKEY:hunter2-secret@host:1",
		"/" + strings.Repeat("x", maxStorageURL),
	} {
		_, err := ParseStorage(in, "/data/registry")
		if err == nil {
			t.Errorf("ParseStorage(%q) took it", in)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "AKIA") {
			t.Errorf("ParseStorage(%q): the error repeats the credentials: %v", in, err)
		}
	}
}

func TestParseCache(t *testing.T) {
	local, _ := ParseStorage("", "/data/registry")
	shared, _ := ParseStorage("/srv/shared", "/data/registry")
	for _, c := range []struct {
		in   string
		st   Storage
		want Cache
	}{
		{"", local, Cache{Kind: CacheNone}},
		{"none", shared, Cache{Kind: CacheNone}},
		{"inmemory", local, Cache{Kind: CacheInMemory}},
		{"redis://127.0.0.1:6379/2", shared, Cache{Kind: CacheRedis, Addr: "127.0.0.1:6379", DB: 2}},
		{"redis://cache:6379", shared, Cache{Kind: CacheRedis, Addr: "cache:6379"}},
	} {
		got, err := ParseCache(c.in, c.st)
		if err != nil || got != c.want {
			t.Errorf("ParseCache(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"memory", "redis://host", "redis://:pw@host:1/0", "redis://h:1/x", "redis://h:1/0?a=b", "http://h:1"} {
		if _, err := ParseCache(in, local); err == nil {
			t.Errorf("ParseCache(%q) took it", in)
		}
	}
	if _, err := ParseCache("inmemory", shared); err == nil || !strings.Contains(err.Error(), "shared") {
		t.Errorf("inmemory on shared storage: %v; want a refusal", err)
	}
}

func FuzzParseStorage(f *testing.F) {
	for _, s := range []string{"", "/x", "s3://bucket/p?region=r&endpoint=http://h:1&force-path-style=true", "s3://u:p@b", "redis://h:1/0", "inmemory"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		st, err := ParseStorage(in, "/data")
		if err != nil {
			return
		}
		if st.Kind == StorageS3 && (st.Bucket == "" || st.Region == "") {
			t.Fatalf("%q: %+v", in, st)
		}
		// What String prints parses back to the same storage.
		if st.Kind == StorageS3 {
			again, err := ParseStorage(st.String(), "/data")
			if err != nil || again != st {
				t.Fatalf("%q -> %q -> %+v, %v", in, st.String(), again, err)
			}
		}
		_, _ = ParseCache(in, st)
	})
}
