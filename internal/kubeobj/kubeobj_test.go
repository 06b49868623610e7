package kubeobj

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// TestNewSchemeKnowsEveryKind checks that the scheme the controller, the
// speaker and the CLI share maps every metallb.io kind, and its list, to its
// group and version both ways, and that the group versions know the meta/v1
// options kinds clients send (ListOptions for a List).
func TestNewSchemeKnowsEveryKind(t *testing.T) {
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		obj, list runtime.Object
		kind      string
		version   string
	}{
		{&v1beta1.IPAddressPool{}, &v1beta1.IPAddressPoolList{}, "IPAddressPool", "v1beta1"},
		{&v1beta1.L2Advertisement{}, &v1beta1.L2AdvertisementList{}, "L2Advertisement", "v1beta1"},
		{&v1beta1.BGPAdvertisement{}, &v1beta1.BGPAdvertisementList{}, "BGPAdvertisement", "v1beta1"},
		{&v1beta1.BGPPeer{}, &v1beta1.BGPPeerList{}, "BGPPeer", "v1beta1"},
		{&v1beta1.BFDProfile{}, &v1beta1.BFDProfileList{}, "BFDProfile", "v1beta1"},
		{&v1beta1.Community{}, &v1beta1.CommunityList{}, "Community", "v1beta1"},
		{&v1beta1.ServiceL2Status{}, &v1beta1.ServiceL2StatusList{}, "ServiceL2Status", "v1beta1"},
		{&v1beta1.ServiceBGPStatus{}, &v1beta1.ServiceBGPStatusList{}, "ServiceBGPStatus", "v1beta1"},
		{&v1beta1.BGPSessionState{}, &v1beta1.BGPSessionStateList{}, "BGPSessionState", "v1beta1"},
		{&v1beta1.ConfigurationState{}, &v1beta1.ConfigurationStateList{}, "ConfigurationState", "v1beta1"},
		{&v1beta2.BGPPeer{}, &v1beta2.BGPPeerList{}, "BGPPeer", "v1beta2"},
	} {
		for obj, kind := range map[runtime.Object]string{tc.obj: tc.kind, tc.list: tc.kind + "List"} {
			gvks, _, err := s.ObjectKinds(obj)
			if err != nil || len(gvks) != 1 || gvks[0].Group != "metallb.io" || gvks[0].Version != tc.version || gvks[0].Kind != kind {
				t.Errorf("%T: kinds %v, %v; want metallb.io/%s %s", obj, gvks, err, tc.version, kind)
				continue
			}
			if _, err := s.New(gvks[0]); err != nil {
				t.Errorf("%s: %v", gvks[0], err)
			}
		}
	}
	for _, gv := range []string{"metallb.io/v1beta1", "metallb.io/v1beta2"} {
		gvks, _, err := s.ObjectKinds(&metav1.ListOptions{})
		found := false
		for _, k := range gvks {
			found = found || k.GroupVersion().String() == gv
		}
		if err != nil || !found {
			t.Errorf("ListOptions is not registered in %s (%v)", gv, err)
		}
	}
}
