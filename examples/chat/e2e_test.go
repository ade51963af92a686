package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestBrowser is the browser end-to-end test: it starts the command on a
// free port and a fresh SQLite directory, and runs web/e2e/chat.e2e.mjs,
// which drives three users through the web UI in headless Debian Chromium
// with playwright-core: register (random avatars), pick an avatar,
// befriend, chat live, cut long previews, go offline and stall silently
// (banner, pending messages resent once), reload with a message not
// sent yet (the saved outbox sends it), send a refused message, see
// toasts capped at three, page history (scrolling up and the button),
// create a group, keep its system events across a reload and while
// offline, invite through the approval flow, use the phone layout at
// 390×844, confirm in dialogs, delete an account, sign out everywhere.
// Screenshots go to web/e2e-artifacts/ (git-ignored), or to
// $CHAT_E2E_ARTIFACTS; its layout-*.png are the ones docs/ holds.
//
// It needs /usr/bin/chromium (or $CHROMIUM), node and the web app's npm
// packages: `bash .ci/setup` installs them.
func TestBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s: run `bash .ci/setup`, which installs Debian's chromium package (%v)", chromium, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join("web", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("examples/chat/web has no node_modules/playwright-core: run `bash .ci/setup` (npm ci there) (%v)", err)
	}
	artifacts := os.Getenv("CHAT_E2E_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join("web", "e2e-artifacts")
	}
	artifacts, err = filepath.Abs(artifacts)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}

	url, stop := startCommand(t, config{bcryptCost: bcrypt.MinCost})
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "chat.e2e.mjs"))
	cmd.Dir = "web"
	cmd.Env = append(os.Environ(), "CHAT_URL="+url, "ARTIFACTS="+artifacts, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v); screenshots in %s\n%s", err, artifacts, out)
	}
	if !strings.Contains(string(out), "all steps passed") {
		t.Fatalf("the browser test ended without passing every step:\n%s", out)
	}
	t.Logf("screenshots in %s\n%s", artifacts, out)
}
