// Package compat drives the bridge with the clients its users already run —
// OpenStack's gophercloud (identity/v3/credentials) and Huawei Cloud's Go SDK
// (IAM *PermanentAccessKey with IamCredentials) — unchanged, over real HTTP,
// in front of reference upstreams of each dialect.
//
// It is its own module so that the SDKs (the Huawei one is a 47 MB download)
// are test dependencies of this check only, never of the bridge's binary.
package compat
