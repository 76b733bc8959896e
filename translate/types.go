// Package translate turns access-key requests and answers of one dialect into the
// other. It is pure: bytes and small value types in, bytes out. It imports neither
// echo nor net/http, so every rule of dialects.md can be tested without a server.
//
// The neutral form is Cred: every field is a string that, wherever possible, points
// into the body it was read from (no copies), so a translation costs one scan of the
// input and one append into the caller's buffer.
package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Dialect is one of the two HTTP dialects for permanent access keys.
type Dialect uint8

const (
	// Oscred is Huawei Cloud / Open Telekom Cloud IAM "OS-CREDENTIAL".
	Oscred Dialect = iota + 1
	// EC2Blob is the Keystone-derived dialect with the key inside a blob.
	EC2Blob
)

// Flavor distinguishes the two ec2blob speakers.
type Flavor uint8

const (
	// NoFlavor is used with Oscred.
	NoFlavor Flavor = iota
	// IBM is IBM Cloud Object Storage: path /credentials, id = AK, blob an object.
	IBM
	// Keystone is OpenStack Keystone: path /v3/credentials, id = sha256(AK), blob a string.
	Keystone
)

// Side is who speaks: a dialect and, for ec2blob, its flavor.
type Side struct {
	Dialect Dialect
	Flavor  Flavor
}

// The three sides there are.
var (
	SideOscred   = Side{Oscred, NoFlavor}
	SideIBM      = Side{EC2Blob, IBM}
	SideKeystone = Side{EC2Blob, Keystone}
)

// String names the side as config, logs and metrics do.
func (s Side) String() string {
	switch s {
	case SideOscred:
		return "oscred"
	case SideIBM:
		return "ec2blob-ibm"
	case SideKeystone:
		return "ec2blob-keystone"
	}
	return "unknown"
}

// DialectName is the dialect alone ("oscred" or "ec2blob").
func (s Side) DialectName() string {
	if s.Dialect == Oscred {
		return "oscred"
	}
	return "ec2blob"
}

// HashIDs reports whether the side names a key by sha256(AK) rather than the AK.
func (s Side) HashIDs() bool { return s == SideKeystone }

// ID is the path id this side uses for the access key ak.
func (s Side) ID(ak string) string {
	if s.HashIDs() {
		return HashID(ak)
	}
	return ak
}

// HashID is Keystone's credential id for an ec2 access key: sha256(AK) in lower hex.
func HashID(ak string) string {
	sum := sha256.Sum256([]byte(ak))
	return hex.EncodeToString(sum[:])
}

// Op is one key operation.
type Op uint8

const (
	OpNone Op = iota
	OpCreate
	OpList
	OpGet
	OpUpdate
	OpDelete
)

var opNames = [...]string{"", "create", "list", "get", "update", "delete"}

// String is the name used in config (policy.rules), spans and metrics.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return ""
}

// Status is a key's state, neutral of letter case.
type Status uint8

const (
	StatusUnset Status = iota
	StatusActive
	StatusInactive
)

// Oscred renders the status the oscred way (lower case).
func (s Status) Oscred() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusInactive:
		return "inactive"
	}
	return ""
}

// EC2 renders the status the ec2blob way (capitalised).
func (s Status) EC2() string {
	switch s {
	case StatusActive:
		return "Active"
	case StatusInactive:
		return "Inactive"
	}
	return ""
}

// BlobForm is how an ec2blob body carried its blob.
type BlobForm uint8

const (
	BlobNone BlobForm = iota
	BlobObject
	BlobString
)

// FormOf is the blob form a flavor sends and answers with by default.
func FormOf(f Flavor) BlobForm {
	if f == Keystone {
		return BlobString
	}
	return BlobObject
}

// Cred is one access key in neutral form. Empty strings are "not known"; Has*
// flags tell "present but empty" from "absent" where the difference matters.
type Cred struct {
	Access      string
	Secret      string
	UserID      string
	ProjectID   string
	Description string
	CreateTime  string
	LastUseTime string
	// SubjectIBMID is IBM's optional subject; echoed to ec2blob clients when known.
	SubjectIBMID string
	// ID is an ec2blob answer's id field, as the upstream sent it.
	ID     string
	Type   string
	Status Status

	HasDescription bool
	HasUserID      bool
	HasProjectID   bool
	// Blob is the form the blob came in (ec2blob input only).
	Blob BlobForm
}

// MaxDescription is the longest description oscred stores, in characters.
const MaxDescription = 255

// AppendTimestamp appends an ec2blob (IBM, Swift-style) X-Timestamp: unix seconds
// and five decimals, truncated — not rounded — so the seconds always match those
// at the end of the X-Trans-Id sent beside it.
func AppendTimestamp(dst []byte, now time.Time) []byte {
	us := now.UnixMicro()
	dst = strconv.AppendInt(dst, us/1e6, 10)
	f := us % 1e6 / 10
	return append(dst, '.', byte('0'+f/10000), byte('0'+f/1000%10), byte('0'+f/100%10), byte('0'+f/10%10), byte('0'+f%10))
}

// Clone copies c's strings out of whatever buffer they point into, so c can
// outlive the answer it was read from.
func (c Cred) Clone() Cred {
	for _, p := range []*string{&c.Access, &c.Secret, &c.UserID, &c.ProjectID, &c.Description,
		&c.CreateTime, &c.LastUseTime, &c.SubjectIBMID, &c.ID, &c.Type} {
		*p = strings.Clone(*p)
	}
	return c
}
