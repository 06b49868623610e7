package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceL2StatusSpec is empty: the object carries only status.
type ServiceL2StatusSpec struct{}

// ServiceL2StatusStatus says which node announces a Service over layer 2 and
// on which interfaces.
type ServiceL2StatusStatus struct {
	// Node is the announcing node.
	// +optional
	Node string `json:"node,omitempty"`
	// ServiceName is the announced Service's name.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
	// ServiceNamespace is the announced Service's namespace.
	// +optional
	ServiceNamespace string `json:"serviceNamespace,omitempty"`
	// Interfaces lists the interfaces that answer for the Service.
	// +optional
	Interfaces []InterfaceInfo `json:"interfaces,omitempty"`
}

// InterfaceInfo names one announcing interface.
type InterfaceInfo struct {
	// Name is the interface name on the node.
	Name string `json:"name,omitempty"`
}

// ServiceL2Status is written by the speaker of the node announcing a
// Service over layer 2; there is one per announced Service per node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Allocated Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`
type ServiceL2Status struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceL2StatusSpec   `json:"spec,omitempty"`
	Status ServiceL2StatusStatus `json:"status,omitempty"`
}

// ServiceL2StatusList is a list of ServiceL2Status.
//
// +kubebuilder:object:root=true
type ServiceL2StatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceL2Status `json:"items"`
}

// ServiceBGPStatusSpec is empty: the object carries only status.
type ServiceBGPStatusSpec struct{}

// ServiceBGPStatusStatus says which peers a node advertises a Service to.
type ServiceBGPStatusStatus struct {
	// Node is the advertising node.
	// +optional
	Node string `json:"node,omitempty"`
	// ServiceName is the advertised Service's name.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
	// ServiceNamespace is the advertised Service's namespace.
	// +optional
	ServiceNamespace string `json:"serviceNamespace,omitempty"`
	// Peers names the BGPPeers the Service is advertised to.
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// ServiceBGPStatus is written by each speaker advertising a Service over
// BGP; there is one per advertised Service per node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`
type ServiceBGPStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceBGPStatusSpec   `json:"spec,omitempty"`
	Status ServiceBGPStatusStatus `json:"status,omitempty"`
}

// ServiceBGPStatusList is a list of ServiceBGPStatus.
//
// +kubebuilder:object:root=true
type ServiceBGPStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceBGPStatus `json:"items"`
}

// ConfigurationResult values.
const (
	// ConfigurationResultValid means the component loaded the current config.
	ConfigurationResultValid = "Valid"
	// ConfigurationResultInvalid means the current config was rejected and
	// the component keeps running on the last good one.
	ConfigurationResultInvalid = "Invalid"
	// ConfigurationResultUnknown means the component has not loaded a config yet.
	ConfigurationResultUnknown = "Unknown"
)

// ConfigurationStateSpec is empty: the object carries only status.
type ConfigurationStateSpec struct{}

// ConfigurationStateStatus says whether a component loaded the current
// configuration, and if not, why.
type ConfigurationStateStatus struct {
	// Result is Valid, Invalid or Unknown.
	// +optional
	// +kubebuilder:validation:Enum=Valid;Invalid;Unknown
	Result string `json:"result,omitempty"`
	// ErrorSummary lists the errors that made the configuration invalid.
	// +optional
	ErrorSummary string `json:"errorSummary,omitempty"`
	// Conditions holds the standard condition list.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConfigurationState reports one component's view of the configuration. The
// controller writes the object named "controller"; each speaker writes
// "speaker-<node>".
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`
// +kubebuilder:printcolumn:name="Errors",type=string,JSONPath=`.status.errorSummary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConfigurationState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConfigurationStateSpec   `json:"spec,omitempty"`
	Status ConfigurationStateStatus `json:"status,omitempty"`
}

// ConfigurationStateList is a list of ConfigurationState.
//
// +kubebuilder:object:root=true
type ConfigurationStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConfigurationState `json:"items"`
}

func init() {
	register(
		&ServiceL2Status{}, &ServiceL2StatusList{},
		&ServiceBGPStatus{}, &ServiceBGPStatusList{},
		&ConfigurationState{}, &ConfigurationStateList{},
	)
}
