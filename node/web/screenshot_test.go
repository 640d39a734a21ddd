package web_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// screenshot asks TestUIFollowsOperationsLive to save the operation page of
// the rolled-back trip as the README's picture; normal runs write nothing.
var screenshot = flag.Bool("screenshot", false, "save the rolled-back trip's operation page to docs/ui-rolled-back.png")

// screenshotPath is relative to this package's directory, where go test
// runs.
var screenshotPath = filepath.Join("..", "..", "docs", "ui-rolled-back.png")

// saveScreenshot writes the page as it is to screenshotPath when the
// -screenshot flag is set.
func saveScreenshot(t *testing.T, b *browser) {
	t.Helper()
	if !*screenshot {
		return
	}
	// A fixed viewport makes the picture the same from run to run.
	b.do(t, "size the viewport", chromedp.EmulateViewport(1280, 900))
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(screenshotPath, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", screenshotPath, len(png))
}

// saveMoveScreenshot writes the page showing moved tasks beside the
// README's picture when the -screenshot flag is set.
func saveMoveScreenshot(t *testing.T, b *browser) {
	t.Helper()
	if !*screenshot {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(filepath.Dir(screenshotPath), "ui-moved.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}
