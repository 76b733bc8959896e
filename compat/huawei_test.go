package compat

import (
	"errors"
	"slices"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	iam "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/iam/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/iam/v3/model"
)

var upstreams = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

// huawei is an IAM client as a Huawei Cloud user builds one: endpoint and an
// X-Auth-Token credential, nothing bridge-specific.
func huawei(t *testing.T, endpoint, token string) *iam.IamClient {
	t.Helper()
	hc, err := iam.IamClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(iam.NewIamCredentialsBuilder().WithXAuthToken(token).Build()).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return iam.NewIamClient(hc)
}

// serviceError is the SDK's error for a non-2xx answer, or a failure.
func serviceError(t *testing.T, err error) *sdkerr.ServiceResponseError {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("want the SDK's ServiceResponseError, got %T %v", err, err)
	}
	return se
}

func TestHuaweiSDKPermanentAccessKeys(t *testing.T) {
	for _, up := range upstreams {
		t.Run("upstream "+up.String(), func(t *testing.T) {
			e := bt.Start(t, up, nil)
			c := huawei(t, e.URL, bt.Alice)
			desc := "ci key"

			created, err := c.CreatePermanentAccessKey(&model.CreatePermanentAccessKeyRequest{
				Body: &model.CreatePermanentAccessKeyRequestBody{Credential: &model.CreateCredentialOption{UserId: "u-alice", Description: &desc}},
			})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			k := created.Credential
			if k == nil || k.Access == "" || k.Secret == "" || k.UserId != "u-alice" || k.Status != "active" || k.Description != desc {
				t.Fatalf("create answered %+v", k)
			}

			shown, err := c.ShowPermanentAccessKey(&model.ShowPermanentAccessKeyRequest{AccessKey: k.Access})
			if err != nil {
				t.Fatalf("show: %v", err)
			}
			if s := shown.Credential; s == nil || s.Access != k.Access || s.Status != "active" || s.Description != desc || s.UserId != "u-alice" {
				t.Fatalf("show answered %+v", shown.Credential)
			}

			inactive, newDesc := model.GetUpdateCredentialOptionStatusEnum().INACTIVE, "rotated"
			updated, err := c.UpdatePermanentAccessKey(&model.UpdatePermanentAccessKeyRequest{
				AccessKey: k.Access,
				Body:      &model.UpdatePermanentAccessKeyRequestBody{Credential: &model.UpdateCredentialOption{Status: &inactive, Description: &newDesc}},
			})
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if u := updated.Credential; u == nil || u.Access != k.Access || u.Status != "inactive" || u.Description != newDesc {
				t.Fatalf("update answered %+v", updated.Credential)
			}
			// The backend holds what the SDK was told.
			if got, _ := e.Store.Get(k.Access); got.Active || got.Description != newDesc {
				t.Fatalf("backend holds %+v after the update", got)
			}

			listed, err := c.ListPermanentAccessKeys(&model.ListPermanentAccessKeysRequest{})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var aks []string
			for _, l := range *listed.Credentials {
				aks = append(aks, l.Access)
				if l.UserId != "u-alice" {
					t.Errorf("alice's list holds %s's key %s", l.UserId, l.Access)
				}
			}
			if !slices.Contains(aks, k.Access) {
				t.Fatalf("list %v misses %s", aks, k.Access)
			}

			// Quota: the second key is fine, the third is the SDK's akSkNumExceed.
			if _, err := c.CreatePermanentAccessKey(&model.CreatePermanentAccessKeyRequest{
				Body: &model.CreatePermanentAccessKeyRequestBody{Credential: &model.CreateCredentialOption{UserId: "u-alice"}},
			}); err != nil {
				t.Fatalf("second create: %v", err)
			}
			_, err = c.CreatePermanentAccessKey(&model.CreatePermanentAccessKeyRequest{
				Body: &model.CreatePermanentAccessKeyRequestBody{Credential: &model.CreateCredentialOption{UserId: "u-alice"}},
			})
			if se := serviceError(t, err); se.StatusCode != 400 || se.ErrorCode != "akSkNumExceed" || se.RequestId == "" {
				t.Fatalf("third create: want 400 akSkNumExceed with a request id, got %d %q %q", se.StatusCode, se.ErrorCode, se.RequestId)
			}

			// Another member may not touch alice's key; the SDK reads the code.
			_, err = huawei(t, e.URL, bt.Bob).DeletePermanentAccessKey(&model.DeletePermanentAccessKeyRequest{AccessKey: k.Access})
			if se := serviceError(t, err); se.StatusCode != 403 || se.ErrorCode != "IAM.0003" {
				t.Fatalf("bob's delete: want 403 IAM.0003, got %d %q", se.StatusCode, se.ErrorCode)
			}

			if _, err := c.DeletePermanentAccessKey(&model.DeletePermanentAccessKeyRequest{AccessKey: k.Access}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = c.ShowPermanentAccessKey(&model.ShowPermanentAccessKeyRequest{AccessKey: k.Access})
			// An oscred upstream's own 404 is passed untouched (Huawei's Keystone
			// shape, whose numeric code the SDK leaves out); one the bridge renders
			// from another dialect carries both shapes, so the SDK reads IAM.0004.
			se := serviceError(t, err)
			if se.StatusCode != 404 || (up != translate.SideOscred && se.ErrorCode != "IAM.0004") {
				t.Fatalf("show after delete: want 404 IAM.0004, got %d %q", se.StatusCode, se.ErrorCode)
			}

			// A token the identity service does not know.
			_, err = huawei(t, e.URL, "not-a-token").ListPermanentAccessKeys(&model.ListPermanentAccessKeysRequest{})
			if se := serviceError(t, err); se.StatusCode != 401 || se.ErrorCode != "IAM.0001" {
				t.Fatalf("bad token: want 401 IAM.0001, got %d %q", se.StatusCode, se.ErrorCode)
			}
		})
	}
}
