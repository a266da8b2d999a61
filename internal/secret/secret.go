// Package secret seals the secrets scangate keeps in its database —
// webhook URLs and their signing secrets, the credentials of external git
// sources, secret build args — so that a copy of the database (a backup, a
// dump, a file sent with a bug report) does not give them away.
//
// Sealing is AES-256-GCM from the standard library (crypto/aes,
// crypto/cipher): each value is encrypted under a random 32-byte key kept
// in the data folder's keys/ folder (0700, each key file 0600), with a
// fresh 96-bit random nonce, and written as text:
//
//	sealed:k<ID>:<base64url(nonce || ciphertext || tag)>
//
// The key id in front tells which key opens the value, so keys can be
// rotated: Rotate makes a new key current, re-seals every stored value
// under it (each package that keeps secrets gives a Resealer for its own
// tables), and only then deletes the old keys. A key manager (KMS, Vault)
// would keep the key off the machine; scangate has none to depend on, and
// the threat this answers is the database leaving the machine without its
// keys folder. Whoever can read the data folder can read the secrets.
//
// The current key is the one with the highest id, read from the folder at
// each Seal rather than remembered, so that a rotation made by another
// process (`scangate key rotate` while the server runs) takes effect at
// once. Callers seal inside the write transaction that stores the value:
// SQLite has one writer, so a value is either stored before a rotation's
// transaction (and re-sealed by it) or sealed after it (under the new key),
// never under a key the rotation is about to delete.
package secret

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/scangate/scangate/internal/store"
)

// Dir is the keys' folder inside the data folder.
const Dir = "keys"

// MaxSealed bounds the length of a sealed value Unseal reads: the values
// sealed are URLs, secrets and small documents, and a larger one in the
// database is damage, not data.
const MaxSealed = 1 << 20

const (
	prefix  = "sealed:k"
	keySize = 32 // AES-256
	keyExt  = ".key"
)

// ErrNoKey reports a sealed value whose key is not in the keys folder: it
// was retired, or the folder was not restored with the database.
var ErrNoKey = errors.New("no such key")

// ErrMalformed reports a value that is not one Seal wrote.
var ErrMalformed = errors.New("not a sealed value")

// Keys seals and unseals with the keys of one keys folder. It is safe for
// concurrent use.
type Keys struct {
	dir string

	mu    sync.Mutex
	ready bool                // the folder and a first key exist
	aeads map[int]cipher.AEAD // keys loaded, by id; key files never change
}

// At returns the keys in dir (the data folder's keys/ folder) without
// touching it: the folder and a first key are made at the first use.
func At(dir string) *Keys { return &Keys{dir: dir, aeads: map[int]cipher.AEAD{}} }

// InDataDir is At for the data folder dataDir.
func InDataDir(dataDir string) *Keys { return At(filepath.Join(dataDir, Dir)) }

// Open returns the keys in dir, making the folder and a first key if there
// are none.
func Open(dir string) (*Keys, error) {
	k := At(dir)
	if _, err := k.current(); err != nil {
		return nil, err
	}
	return k, nil
}

// OpenIn is Open for the data folder dataDir.
func OpenIn(dataDir string) (*Keys, error) { return Open(filepath.Join(dataDir, Dir)) }

// ensure makes the folder, private, and a first key if it has none.
func (k *Keys) ensure() error {
	k.mu.Lock()
	ready := k.ready
	k.mu.Unlock()
	if ready {
		return nil
	}
	if err := os.MkdirAll(k.dir, store.DirMode); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Chmod(k.dir, store.DirMode); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	ids, err := k.ids()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		// Two processes starting at once may both get here; create makes
		// one key 1 and the other finds it.
		if err := k.create(1); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	k.mu.Lock()
	k.ready = true
	k.mu.Unlock()
	return nil
}

// ids lists the key ids in the folder, in order.
func (k *Keys) ids() ([]int, error) {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	var ids []int
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), keyExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if id, err := parseID(name); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func parseID(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id < 1 || id > 1<<30 || strconv.Itoa(id) != s {
		return 0, fmt.Errorf("key id %q: %w", s, ErrMalformed)
	}
	return id, nil
}

func (k *Keys) path(id int) string { return filepath.Join(k.dir, strconv.Itoa(id)+keyExt) }

// create writes a new random key as id; it fails with fs.ErrExist if the
// id is taken. The key is written to a temporary file and linked into
// place, so no reader ever sees half a key.
func (k *Keys) create(id int) error {
	var raw [keySize]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	tmp, err := os.CreateTemp(k.dir, ".new-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(store.FileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(raw[:]) + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Link(tmp.Name(), k.path(id)); err != nil {
		return fmt.Errorf("keys: key %d: %w", id, err)
	}
	return syncDir(k.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// aead returns key id's cipher, reading its file the first time.
func (k *Keys) aead(id int) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.aeads[id]; ok {
		return a, nil
	}
	p := k.path(id)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %d is not in %s: %w", id, k.dir, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("key %d: %w", id, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// As ssh does with private keys: a key others can read protects
		// nothing, and saying so beats using it.
		return nil, fmt.Errorf("key file %s can be read by other users (mode %#o): chmod 600 it", p, fi.Mode().Perm())
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("key %d: %w", id, err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != keySize {
		return nil, fmt.Errorf("key file %s: want %d hex digits", p, 2*keySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("key %d: %w", id, err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key %d: %w", id, err)
	}
	k.aeads[id] = a
	return a, nil
}

// current returns the current key's id: the highest in the folder.
func (k *Keys) current() (int, error) {
	if err := k.ensure(); err != nil {
		return 0, err
	}
	ids, err := k.ids()
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, fmt.Errorf("keys: %s holds no key: %w", k.dir, ErrNoKey)
	}
	id := ids[len(ids)-1]
	if _, err := k.aead(id); err != nil {
		return 0, err
	}
	return id, nil
}

// Current returns the id of the key Seal uses now.
func (k *Keys) Current() (int, error) { return k.current() }

// Seal encrypts plaintext under the current key. Purpose names what the
// value is ("events.target"); it is authenticated with it, so that a value
// sealed for one purpose is not taken for another.
func (k *Keys) Seal(purpose string, plaintext []byte) (string, error) {
	id, err := k.current()
	if err != nil {
		return "", err
	}
	a, err := k.aead(id)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := a.Seal(nonce, nonce, plaintext, aad(purpose))
	return prefix + strconv.Itoa(id) + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// SealString is Seal for text.
func (k *Keys) SealString(purpose, plaintext string) (string, error) {
	return k.Seal(purpose, []byte(plaintext))
}

func aad(purpose string) []byte { return []byte("scangate " + purpose) }

// KeyID returns the id of the key sealed was sealed under.
func KeyID(sealed string) (int, error) {
	id, _, err := split(sealed)
	return id, err
}

// IsSealed reports whether s has the form Seal writes.
func IsSealed(s string) bool {
	_, _, err := split(s)
	return err == nil
}

func split(sealed string) (int, []byte, error) {
	if len(sealed) > MaxSealed {
		return 0, nil, fmt.Errorf("%d bytes, at most %d: %w", len(sealed), MaxSealed, ErrMalformed)
	}
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return 0, nil, ErrMalformed
	}
	idText, body, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, nil, ErrMalformed
	}
	id, err := parseID(idText)
	if err != nil {
		return 0, nil, err
	}
	if strings.ContainsAny(body, "\r\n") {
		// The decoder skips line ends; a sealed value has none.
		return 0, nil, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, raw, nil
}

// Unseal decrypts a value Seal wrote for purpose. A value that was changed,
// or sealed for another purpose, is an error.
func (k *Keys) Unseal(purpose, sealed string) ([]byte, error) {
	id, raw, err := split(sealed)
	if err != nil {
		return nil, fmt.Errorf("unseal %s: %w", purpose, err)
	}
	a, err := k.aead(id)
	if err != nil {
		return nil, fmt.Errorf("unseal %s: %w", purpose, err)
	}
	if len(raw) < a.NonceSize()+a.Overhead() {
		return nil, fmt.Errorf("unseal %s: too short: %w", purpose, ErrMalformed)
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], aad(purpose))
	if err != nil {
		return nil, fmt.Errorf("unseal %s with key %d: %w", purpose, id, err)
	}
	return plain, nil
}

// UnsealString is Unseal for text.
func (k *Keys) UnsealString(purpose, sealed string) (string, error) {
	b, err := k.Unseal(purpose, sealed)
	return string(b), err
}

// Fresh reports whether sealed was sealed under the current key, so that a
// Resealer can leave it alone.
func (k *Keys) Fresh(sealed string) (bool, error) {
	id, err := KeyID(sealed)
	if err != nil {
		return false, err
	}
	cur, err := k.current()
	return id == cur, err
}

// Reseal returns sealed sealed again under the current key, and whether
// that changed it (a value under the current key is returned as it is).
func (k *Keys) Reseal(purpose, sealed string) (string, bool, error) {
	fresh, err := k.Fresh(sealed)
	if err != nil || fresh {
		return sealed, false, err
	}
	plain, err := k.Unseal(purpose, sealed)
	if err != nil {
		return "", false, err
	}
	out, err := k.Seal(purpose, plain)
	return out, err == nil, err
}

// A Resealer seals again, in tx, every secret its package stores under a
// key that is not the current one, and seals those an older scangate
// stored in the clear. It returns how many values it changed.
type Resealer func(ctx context.Context, tx *sql.Tx, keys *Keys) (int, error)

// ResealAll runs the resealers in one transaction of st: afterwards no stored
// secret is in the clear or under an old key.
func (k *Keys) ResealAll(ctx context.Context, st *store.Store, resealers ...Resealer) (int, error) {
	n := 0
	err := st.InTx(ctx, func(tx *sql.Tx) error {
		for _, r := range resealers {
			c, err := r(ctx, tx, k)
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	return n, nil
}

// Rotation is what Rotate did.
type Rotation struct {
	Key      int   // the new current key
	Resealed int   // stored values sealed again under it
	Retired  []int // the old keys deleted
}

// Rotate makes a new key current, seals every stored secret again under it
// (the resealers, in one transaction of st), and then deletes the old keys.
// Should it stop half way, the old keys are still there and every value
// can still be opened; running it again finishes the work.
func (k *Keys) Rotate(ctx context.Context, st *store.Store, resealers ...Resealer) (Rotation, error) {
	if err := k.ensure(); err != nil {
		return Rotation{}, err
	}
	old, err := k.ids()
	if err != nil {
		return Rotation{}, err
	}
	next := 1
	if len(old) > 0 {
		next = old[len(old)-1] + 1
	}
	if err := k.create(next); err != nil {
		return Rotation{}, fmt.Errorf("rotate: %w", err)
	}
	n, err := k.ResealAll(ctx, st, resealers...)
	if err != nil {
		return Rotation{Key: next}, fmt.Errorf("rotate: the new key %d is current, but the old keys are kept: %w", next, err)
	}
	r := Rotation{Key: next, Resealed: n}
	for _, id := range old {
		// Only after the transaction committed: were it rolled back, the
		// values would still need these keys.
		if err := os.Remove(k.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, fmt.Errorf("rotate: retire key %d: %w", id, err)
		}
		k.mu.Lock()
		delete(k.aeads, id)
		k.mu.Unlock()
		r.Retired = append(r.Retired, id)
	}
	return r, syncDir(k.dir)
}
