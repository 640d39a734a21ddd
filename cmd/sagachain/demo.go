package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagachain/sagachain/config"
	"github.com/sagachain/sagachain/demo"
)

// devDemoFile is the travel demo's inventory in a dev home.
const devDemoFile = "demo-travel.json"

// demoShutdownTimeout bounds how long a stopping demo server waits for the
// requests it is serving.
const demoShutdownTimeout = 5 * time.Second

// maxAlertBytes bounds one alert the webhook receiver reads.
const maxAlertBytes = 1 << 20

// alertIDHeader carries an alert's id on the webhook's requests: what
// node/monitor sends (monitor.HeaderAlertID, which DESIGN §3 keeps out of
// cmd's imports; a test holds the two equal).
const alertIDHeader = "X-Sagachain-Alert-Id"

func (a *app) newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Serve the travel demo's functions, or a webhook receiver that prints alerts",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("demo needs a subcommand: travel or webhook"))
		},
	}
	travel := &cobra.Command{
		Use:   "travel [--listen ADDR] [--data FILE] [--reset]",
		Short: "Serve an airline, hotel, car hire, excursion and payment service as http functions",
		Long: `travel serves the functions of a travel booking as http functions (SPEC §1)
over one inventory kept in a JSON file: airline.reserve and airline.cancel,
hotel.*, car.* and excursion.* alike, and payment.charge and payment.refund.
A reserve takes a unit (a seat, a room, ...) and answers a confirmation; a
retry under the same idempotency key answers the same without taking another;
a cancel gives the unit back, and succeeds with nothing to undo when there is
none. The hotel Seaside has no rooms: booking it fails with 409, so the saga
rolls back.

It prints the address of its inventory page and the functions: section for a
node's config (testnet/demo/config.yaml has it for the default address).
sagachain dev runs this demo itself unless --no-demo.`,
		Example: `  sagachain demo travel
  sagachain dev --config testnet/demo/config.yaml
  sagachain submit testnet/ops/trip-travel-fails.yaml --wait`,
		Args: cobra.NoArgs,
		RunE: a.runE(a.demoTravel),
	}
	travel.Flags().String("listen", "127.0.0.1:9001", "the address to serve on, host:port")
	travel.Flags().String("data", "", "the inventory file (default ~/.sagachain/demo-travel.json)")
	travel.Flags().Bool("reset", false, "start from the default inventory, forgetting every reservation")

	webhook := &cobra.Command{
		Use:   "webhook [--listen ADDR]",
		Short: "Receive the alerts of monitoring rules and print them",
		Long: `webhook accepts the alerts a node's monitoring rules POST (SPEC §4), on any
path, and prints each: its X-Sagachain-Alert-Id header, then its JSON body.
It answers 204, so the node counts the alert delivered.`,
		Example: `  sagachain demo webhook --listen 127.0.0.1:9100`,
		Args:    cobra.NoArgs,
		RunE:    a.runE(a.demoWebhook),
	}
	webhook.Flags().String("listen", "127.0.0.1:9100", "the address to serve on, host:port")
	cmd.AddCommand(travel, webhook)
	return cmd
}

func (a *app) demoTravel(cmd *cobra.Command, _ []string) error {
	path := a.flagString("data")
	if path == "" {
		p, err := userPath(devDemoFile)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		path = p
	}
	reset, err := a.flagBool("reset")
	if err != nil {
		return err
	}
	if reset {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--reset: %w", err)
		}
	}
	travel, err := demo.NewTravel(path, demo.DefaultInventory())
	if err != nil {
		return inputError(err)
	}
	ln, err := a.demoListen()
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(a.stdout, "travel demo: inventory page %s/ (data in %s)\n", base, path)
	fmt.Fprintf(a.stdout, "the functions for a node's config file:\n%s", demoConfigText(base))
	return a.serveUntilSignal(cmd.Context(), travel.Handler(), ln)
}

// demoListen listens on --listen.
func (a *app) demoListen() (net.Listener, error) {
	addr, err := listenAddr(a.flagString("listen"))
	if err == nil {
		_, _, err = net.SplitHostPort(addr)
	}
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: want host:port, got %q", a.flagSource("listen"), a.flagString("listen")))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.flagSource("listen"), err)
	}
	return ln, nil
}

// demoFunctions are the function settings of the travel demo served at
// base (http://host:port).
func demoFunctions(base string) map[string]config.FunctionConfig {
	fns := make(map[string]config.FunctionConfig)
	for _, ep := range demo.Endpoints() {
		fns[ep.Function] = config.FunctionConfig{HTTP: base + ep.Path}
	}
	return fns
}

// demoConfigText is the functions: section of a config file for the travel
// demo served at base.
func demoConfigText(base string) string {
	fns := demoFunctions(base)
	names := slices.Sorted(maps.Keys(fns))
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var b strings.Builder
	b.WriteString("functions:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-*s {http: %q}\n", width+1, n+":", fns[n].HTTP)
	}
	return b.String()
}

// serveUntilSignal serves h on ln until ctx ends or SIGINT or SIGTERM
// comes, then lets the requests being served finish.
func (a *app) serveUntilSignal(ctx context.Context, h http.Handler, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stop()
	shutdown, cancel := context.WithTimeout(context.Background(), demoShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startDevDemo starts the travel demo of `dev` on a free port of 127.0.0.1,
// with its inventory in the home, and adds its functions to cfg. A function
// the config defines stays the config's; when the config defines them all
// (it points at a demo of its own, say), nothing is started and url is
// empty. stop shuts the demo down; call it once the node has stopped, since
// a stopping node may still be rolling back.
func (a *app) startDevDemo(home string, cfg *config.Config) (url string, stop func(), err error) {
	travel, err := demo.NewTravel(filepath.Join(home, devDemoFile), demo.DefaultInventory())
	if err != nil {
		return "", nil, fmt.Errorf("%w (--no-demo runs dev without the demo)", err)
	}
	var kept []string
	for _, ep := range demo.Endpoints() {
		if _, ok := cfg.Functions[ep.Function]; ok {
			kept = append(kept, ep.Function)
		}
	}
	if len(kept) == len(demo.Endpoints()) {
		a.log.Info("the config defines every function of the travel demo; not starting the dev's own")
		return "", func() {}, nil
	}
	if len(kept) > 0 {
		a.log.Warn("the config defines some functions of the travel demo; those stay the config's", "functions", strings.Join(kept, ","))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("travel demo: %w", err)
	}
	url = "http://" + ln.Addr().String()
	if cfg.Functions == nil {
		cfg.Functions = make(map[string]config.FunctionConfig)
	}
	for name, fc := range demoFunctions(url) {
		if _, ok := cfg.Functions[name]; !ok {
			cfg.Functions[name] = fc
		}
	}
	srv := &http.Server{Handler: travel.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("travel demo stopped", "err", err)
		}
	}()
	return url, func() {
		ctx, cancel := context.WithTimeout(context.Background(), demoShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

func (a *app) demoWebhook(cmd *cobra.Command, _ []string) error {
	ln, err := a.demoListen()
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "alert webhook: listening on http://%s/ (any path); Ctrl-C stops\n", ln.Addr())
	return a.serveUntilSignal(cmd.Context(), &alertPrinter{out: a.stdout, log: a.log.Error}, ln)
}

// alertPrinter prints every alert POSTed to it: a line with its id, then
// its JSON body, indented.
type alertPrinter struct {
	mu  sync.Mutex
	out io.Writer
	log func(msg string, args ...any)
}

func (p *alertPrinter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST alerts here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAlertBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		p.log("refused an alert that is not JSON", "path", r.URL.Path, "err", err)
		http.Error(w, "want a JSON body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(alertIDHeader)
	if id == "" {
		id = "without " + alertIDHeader
	}
	p.mu.Lock()
	_, err = fmt.Fprintf(p.out, "alert %s (POST %s)\n%s\n", id, r.URL.Path, pretty.Bytes())
	p.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
