package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Limits of the demo store.
const (
	maxBodyBytes = 4 << 10
	maxTitle     = 200
	maxDocuments = 1000 // per organization
)

// document is a document of an organization.
type document struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// store keeps documents in memory, by organization ID.
type store struct {
	mu   sync.Mutex
	next int
	docs map[string][]document
}

func newStore() *store { return &store{docs: map[string][]document{}} }

func (s *store) list(orgID string) []document {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.docs[orgID])
	if out == nil {
		out = []document{}
	}
	return out
}

// add stores a document; it reports false when the organization is full.
func (s *store) add(orgID, title, memberID string) (document, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.docs[orgID]) >= maxDocuments {
		return document{}, false
	}
	s.next++
	d := document{ID: "doc-" + strconv.Itoa(s.next), Title: title, CreatedBy: memberID, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	s.docs[orgID] = append(s.docs[orgID], d)
	return d, true
}

// remove deletes a document of the organization; it reports false when
// there is none with that ID (in that organization).
func (s *store) remove(orgID, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	docs := s.docs[orgID]
	i := slices.IndexFunc(docs, func(d document) bool { return d.ID == id })
	if i < 0 {
		return false
	}
	s.docs[orgID] = slices.Delete(docs, i, i+1)
	return true
}

// readTitle reads {"title": "..."} from a bounded JSON body.
func readTitle(c echo.Context) (string, error) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBodyBytes)
	var in struct {
		Title string `json:"title"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return "", errors.New(`body must be a JSON object {"title": "..."} of at most 4 KB`)
	}
	title := strings.TrimSpace(in.Title)
	switch {
	case title == "":
		return "", errors.New("title is required")
	case utf8.RuneCountInString(title) > maxTitle:
		return "", errors.New("title is longer than 200 characters")
	case strings.IndexFunc(title, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "", errors.New("title contains control characters")
	}
	return title, nil
}
