//go:build tools

// Keeps promtool's package in go.mod and go.sum; the Makefile builds it by its import path.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
