// goverifier checks ikledger's Merkle tree output with Go's reference code:
// golang.org/x/mod/sumdb/note (signed notes) and golang.org/x/mod/sumdb/tlog
// (RFC 6962 hashes, stored-hash tree, inclusion and consistency proofs).
//
// It reads one JSON document on stdin (written by tests/verifiable/test_go_verifier.py),
// recomputes every leaf from the events' fields, the roots from the leaves, and
// checks every proof. It prints "ok" and exits 0, or prints what failed and exits 1.
//
// Build offline in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o goverifier main.go
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type event struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	ReceivedAtMs uint64 `json:"received_at_ms"`
	Body         []byte `json:"body"` // base64 in JSON
}

type inclusion struct {
	LeafIndex int64    `json:"leaf_index"`
	LeafHash  string   `json:"leaf_hash"`
	TreeSize  int64    `json:"tree_size"`
	Root      string   `json:"root"`
	Path      []string `json:"path"`
}

type consistency struct {
	OldSize  int64    `json:"old_size"`
	OldRoot  string   `json:"old_root"`
	TreeSize int64    `json:"tree_size"`
	Root     string   `json:"root"`
	Path     []string `json:"path"`
}

type input struct {
	VerifierKey string        `json:"verifier_key"`
	Checkpoint  string        `json:"checkpoint"`
	Events      []event       `json:"events"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func hash(text string) tlog.Hash {
	h, err := tlog.ParseHash(text)
	if err != nil {
		fail("not a base64 hash: %q", text)
	}
	return h
}

func hashes(texts []string) []tlog.Hash {
	out := make([]tlog.Hash, len(texts))
	for i, t := range texts {
		out[i] = hash(t)
	}
	return out
}

// leaf is the leaf encoding, written here independently of ikledger's Python.
func leaf(e event) []byte {
	var b bytes.Buffer
	sum := sha256.Sum256(e.Body)
	b.Write(sum[:])
	binary.Write(&b, binary.BigEndian, e.ReceivedAtMs)
	binary.Write(&b, binary.BigEndian, uint16(len(e.ID)))
	b.WriteString(e.ID)
	binary.Write(&b, binary.BigEndian, uint16(len(e.Type)))
	b.WriteString(e.Type)
	return b.Bytes()
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("input: %v", err)
	}

	// The checkpoint: a signed note whose text is origin, size, base64 root.
	verifier, err := note.NewVerifier(in.VerifierKey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open([]byte(in.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint note: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint text: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %q", lines[1])
	}
	root := hash(lines[2])

	// The tree, rebuilt from the events with tlog's stored-hash scheme.
	var storage []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = storage[x]
		}
		return out, nil
	})
	var leafHashes []tlog.Hash
	for i, e := range in.Events {
		data := leaf(e)
		stored, err := tlog.StoredHashes(int64(i), data, reader)
		if err != nil {
			fail("stored hashes of record %d: %v", i, err)
		}
		storage = append(storage, stored...)
		leafHashes = append(leafHashes, tlog.RecordHash(data))
	}
	if size != int64(len(in.Events)) {
		fail("checkpoint size %d, but %d events", size, len(in.Events))
	}
	if th, err := tlog.TreeHash(size, reader); err != nil || th != root {
		fail("root of %d events is %v, the checkpoint says %v (%v)", size, th, root, err)
	}

	for _, p := range in.Inclusion {
		if hash(p.LeafHash) != leafHashes[p.LeafIndex] {
			fail("leaf hash of record %d differs", p.LeafIndex)
		}
		th, err := tlog.TreeHash(p.TreeSize, reader)
		if err != nil || th != hash(p.Root) {
			fail("root of %d events differs", p.TreeSize)
		}
		if err := tlog.CheckRecord(hashes(p.Path), p.TreeSize, hash(p.Root), p.LeafIndex, hash(p.LeafHash)); err != nil {
			fail("inclusion of record %d in %d: %v", p.LeafIndex, p.TreeSize, err)
		}
	}
	for _, p := range in.Consistency {
		oh, err := tlog.TreeHash(p.OldSize, reader)
		if err != nil || oh != hash(p.OldRoot) {
			fail("old root of %d events differs", p.OldSize)
		}
		if err := tlog.CheckTree(hashes(p.Path), p.TreeSize, hash(p.Root), p.OldSize, hash(p.OldRoot)); err != nil {
			fail("consistency %d -> %d: %v", p.OldSize, p.TreeSize, err)
		}
	}
	fmt.Printf("ok %d events, %d inclusion and %d consistency proofs\n", size, len(in.Inclusion), len(in.Consistency))
}
