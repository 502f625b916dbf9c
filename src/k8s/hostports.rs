//! Host ports as the Pods of a DaemonSet claim them, which is not always what the template says:
//! the DaemonSet controller creates Pods through the API server, whose `SetDefaults_Pod`
//! (pkg/apis/core/v1/defaults.go) gives every port of a `hostNetwork: true` Pod, containers and
//! init containers alike, `hostPort = containerPort` where hostPort is unset
//! (`defaultHostNetworkPorts`). Templates no longer get that default (feature gate
//! DefaultHostNetworkHostPortsInPodTemplates, off from v1.28, removed in v1.31), so the API server
//! validates a DaemonSet without it and every Pod with it.

use k8s_openapi::api::core::v1::{Container, ContainerPort};

/// The hostPort `port` has in a Pod created from the template, and whether it came from the
/// hostNetwork default rather than the template. `None` when it claims no host port (0 or unset
/// without hostNetwork). A containerPort the API server rejects (outside 1-65535) is not
/// defaulted: such a template never makes a Pod.
pub fn pod_host_port(port: &ContainerPort, host_network: bool) -> Option<(i32, bool)> {
    match port.host_port.filter(|h| *h != 0) {
        Some(h) => Some((h, false)),
        None if host_network && (1..=65535).contains(&port.container_port) => {
            Some((port.container_port, true))
        }
        None => None,
    }
}

/// The protocol a port claims: an empty one is TCP (`SetDefaults_ContainerPort`, which applies
/// to templates too).
pub fn protocol(port: &ContainerPort) -> &str {
    port.protocol
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP")
}

/// Whether the scheduler counts the ports of `container` while the Pod runs: regular containers
/// and restartable init containers (sidecars), as `GetHostPorts` (pkg/scheduler/util) collects
/// them for the NodePorts filter and for the ports a node already has in use. An ordinary init
/// container has exited before the Pod runs.
pub fn holds_ports_while_running(container: &Container, init: bool) -> bool {
    !init || container.restart_policy.as_deref() == Some("Always")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port(v: serde_json::Value) -> ContainerPort {
        serde_json::from_value(v).unwrap()
    }

    /// defaultHostNetworkPorts: `if HostPort == 0 { HostPort = ContainerPort }`, only with
    /// hostNetwork.
    #[test]
    fn host_network_fills_an_unset_host_port_from_the_container_port() {
        let cases = [
            (json!({"containerPort": 80}), false, None),
            (json!({"containerPort": 80, "hostPort": 0}), false, None),
            (
                json!({"containerPort": 80, "hostPort": 8080}),
                false,
                Some((8080, false)),
            ),
            (json!({"containerPort": 80}), true, Some((80, true))),
            (
                json!({"containerPort": 80, "hostPort": 0}),
                true,
                Some((80, true)),
            ),
            (
                json!({"containerPort": 80, "hostPort": 80}),
                true,
                Some((80, false)),
            ),
            (json!({"containerPort": 0}), true, None),
            (json!({"containerPort": 70000}), true, None),
        ];
        for (p, host_network, want) in cases {
            assert_eq!(pod_host_port(&port(p.clone()), host_network), want, "{p}");
        }
    }

    #[test]
    fn empty_protocol_is_tcp() {
        assert_eq!(protocol(&port(json!({"containerPort": 1}))), "TCP");
        assert_eq!(
            protocol(&port(json!({"containerPort": 1, "protocol": ""}))),
            "TCP"
        );
        assert_eq!(
            protocol(&port(json!({"containerPort": 1, "protocol": "UDP"}))),
            "UDP"
        );
    }

    #[test]
    fn sidecars_hold_ports_and_init_containers_do_not() {
        let c = |v: serde_json::Value| -> Container { serde_json::from_value(v).unwrap() };
        assert!(holds_ports_while_running(&c(json!({"name": "a"})), false));
        assert!(!holds_ports_while_running(&c(json!({"name": "i"})), true));
        assert!(holds_ports_while_running(
            &c(json!({"name": "s", "restartPolicy": "Always"})),
            true
        ));
    }
}
