//go:build !linux

package procs

import "errors"

// NewSampler: the machine's idle time is read from /proc/stat, Linux only.
func NewSampler() (Sampler, error) {
	return nil, errors.New("procs: following the load needs Linux /proc/stat")
}
