package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// probeClient makes the short requests that watch the network: health,
// readiness, metrics and documents. Every answer is small.
var probeClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
}

const maxProbeBody = 4 << 20

// get fetches url and returns the status and body.
func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	return resp.StatusCode, b, err
}

// health asks a daemon's metrics listener whether it serves (/healthz)
// and whether it is ready (/readyz); the reason it is not ready is the
// /readyz body.
func health(ctx context.Context, metricsAddr string) (up bool, readyErr error) {
	code, _, err := get(ctx, "http://"+metricsAddr+"/healthz")
	if err != nil || code != http.StatusOK {
		return false, errors.New("not serving")
	}
	code, body, err := get(ctx, "http://"+metricsAddr+"/readyz")
	switch {
	case err != nil:
		return true, err
	case code != http.StatusOK:
		return true, errors.New(strings.TrimSpace(string(body)))
	}
	return true, nil
}

// scrape sums, for each name, the samples of that metric on a daemon's
// /metrics (the Prometheus text format: "name{labels} value").
func scrape(ctx context.Context, metricsAddr string, names ...string) (map[string]float64, error) {
	code, body, err := get(ctx, "http://"+metricsAddr+"/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", code)
	}
	return parseMetrics(string(body), names...), nil
}

// parseMetrics sums the samples of each named metric in the Prometheus
// text format.
func parseMetrics(body string, names ...string) map[string]float64 {
	out := make(map[string]float64, len(names))
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		for _, n := range names {
			if !strings.HasPrefix(line, n) || len(line) == len(n) || (line[len(n)] != ' ' && line[len(n)] != '{') {
				continue
			}
			rest := line[len(n):]
			if i := strings.LastIndexByte(rest, '}'); i >= 0 {
				rest = rest[i+1:]
			}
			f := strings.Fields(rest)
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[n] += v
			}
		}
	}
	return out
}

// fetchDocument asks one authority for the document of an epoch and
// verifies it, returning it with the number of signatures it carries. It
// returns a nil document and no error while the authority has none.
func fetchDocument(ctx context.Context, a dirclient.Authority, epoch uint64, authorities []dirclient.Authority) (*pki.Document, int, error) {
	code, body, err := get(ctx, a.URL(dirclient.DocumentPath+strconv.FormatUint(epoch, 10)))
	if err != nil {
		return nil, 0, err
	}
	if code == http.StatusNotFound {
		return nil, 0, nil
	}
	if code != http.StatusOK {
		return nil, 0, fmt.Errorf("document %d from %s: status %d", epoch, a.Name, code)
	}
	ks := make([]keys.IdentityPublicKey, 0, len(authorities))
	for _, x := range authorities {
		ks = append(ks, x.IdentityKey)
	}
	doc, err := pki.VerifyDocument(body, ks, threshold)
	if err != nil {
		return nil, 0, fmt.Errorf("document %d from %s: %w", epoch, a.Name, err)
	}
	sd, err := pki.UnmarshalSignedDocument(body)
	if err != nil {
		return nil, 0, fmt.Errorf("document %d from %s: %w", epoch, a.Name, err)
	}
	return doc, len(sd.Signatures), nil
}
