#!/bin/bash
# shellcheck shell=bash
# devstack plugin for virtio-ovs: source plugin.sh MODE [PHASE]
#
#   stack install      distro Open vSwitch (and OVS-DPDK with hugepages when
#                      VIRTIO_OVS_DPDK=True); this project (setup_develop)
#   stack post-config  the agent's config (iniset); the integration and
#                      provider bridges; the networks of VIRTIO_OVS_NETWORKS
#   stack extra        run_process virtio-ovs-agent
#   unstack            stop the agent
#   clean              remove what this plugin created, nothing else
#
# What the plugin creates is marked in OVSDB (external_ids
# virtio-ovs-devstack=created on bridges, the network list on the
# Open_vSwitch row) so that clean removes exactly that.

VIRTIO_OVS_MARK="virtio-ovs-devstack"

function _virtio_ovs_vsctl {
    ovs-vsctl --db="$VIRTIO_OVS_OVSDB_CONNECTION" --timeout=30 "$@"
}

function _virtio_ovs_ctl {
    "$VIRTIO_OVS_BIN_DIR/virtio-ovs-ctl" --config-file "$VIRTIO_OVS_CONF" "$@"
}

function install_virtio_ovs {
    install_package openvswitch-switch
    if [[ "$VIRTIO_OVS_DPDK" == "True" ]]; then
        install_package openvswitch-switch-dpdk
        configure_virtio_ovs_dpdk
    fi
    setup_develop "$VIRTIO_OVS_DIR"
}

function configure_virtio_ovs_dpdk {
    local before after
    before=$(cat /proc/sys/vm/nr_hugepages)
    if (( before < VIRTIO_OVS_HUGEPAGES )); then
        echo "$VIRTIO_OVS_HUGEPAGES" | sudo tee /proc/sys/vm/nr_hugepages >/dev/null
        after=$(cat /proc/sys/vm/nr_hugepages)
        # Remember what we took, to give exactly that back in clean.
        _virtio_ovs_vsctl set Open_vSwitch . \
            "external_ids:$VIRTIO_OVS_MARK-hugepages=$(( after - before ))"
    fi
    if ! mountpoint -q "$VIRTIO_OVS_HUGEPAGE_MOUNT"; then
        sudo mkdir -p "$VIRTIO_OVS_HUGEPAGE_MOUNT"
        sudo mount -t hugetlbfs -o pagesize=2M nodev "$VIRTIO_OVS_HUGEPAGE_MOUNT"
        _virtio_ovs_vsctl set Open_vSwitch . \
            "external_ids:$VIRTIO_OVS_MARK-mount=$VIRTIO_OVS_HUGEPAGE_MOUNT"
    fi
    local extra="--huge-dir=$VIRTIO_OVS_HUGEPAGE_MOUNT $VIRTIO_OVS_DPDK_EXTRA"
    _virtio_ovs_vsctl set Open_vSwitch . other_config:dpdk-init=true \
        "other_config:dpdk-socket-mem=$VIRTIO_OVS_DPDK_SOCKET_MEM" \
        "other_config:dpdk-lcore-mask=$VIRTIO_OVS_DPDK_LCORE_MASK" \
        "other_config:pmd-cpu-mask=$VIRTIO_OVS_PMD_CPU_MASK" \
        "other_config:dpdk-extra=\"${extra% }\"" \
        "external_ids:$VIRTIO_OVS_MARK-dpdk=true"
    if is_ubuntu; then
        sudo update-alternatives --set ovs-vswitchd \
            /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
    fi
    restart_service openvswitch-switch
}

# Which neutron owns this node's networking: "ovn" (ML2/OVN: neutron owns
# the OVN northbound database, ovn-controller br-int), "ovs" (ML2/OVS:
# neutron's OVS agent owns br-int), or nothing. VIRTIO_OVS_BESIDE_NEUTRON
# overrides what the enabled services say.
function virtio_ovs_neutron_mode {
    local mode=${VIRTIO_OVS_BESIDE_NEUTRON:-auto}
    if [[ "$mode" == "auto" ]]; then
        mode=""
        if [[ "${Q_AGENT:-}" == "ovn" ]] || \
                is_service_enabled ovn-controller q-ovn-agent; then
            mode=ovn
        elif [[ "${Q_AGENT:-}" == "openvswitch" ]] || \
                is_service_enabled q-agt neutron-agent; then
            mode=ovs
        fi
    fi
    [[ "$mode" == "False" ]] && mode=""
    echo "$mode"
}

function configure_virtio_ovs {
    local neutron
    neutron=$(virtio_ovs_neutron_mode)
    sudo mkdir -p "$VIRTIO_OVS_CONF_DIR"
    if [[ ! -f "$VIRTIO_OVS_CONF" ]]; then
        sudo cp "$VIRTIO_OVS_DIR/etc/virtio-ovs.conf.sample" "$VIRTIO_OVS_CONF"
    fi
    iniset "$VIRTIO_OVS_CONF" ovs ovsdb_connection "$VIRTIO_OVS_OVSDB_CONNECTION"
    iniset "$VIRTIO_OVS_CONF" ovs integration_bridge "$VIRTIO_OVS_INTEGRATION_BRIDGE"
    iniset "$VIRTIO_OVS_CONF" ovs datapath_type "$VIRTIO_OVS_DATAPATH_TYPE"
    iniset "$VIRTIO_OVS_CONF" agent report_interval "$VIRTIO_OVS_REPORT_INTERVAL"
    iniset "$VIRTIO_OVS_CONF" agent check_interval "$VIRTIO_OVS_CHECK_INTERVAL"
    case "$neutron" in
        ovn)  # observe beside ML2/OVN: its NB, never written
            iniset "$VIRTIO_OVS_CONF" agent backend ovn
            iniset "$VIRTIO_OVS_CONF" ovn ovn_nb_connection \
                "${OVN_NB_REMOTE:-$VIRTIO_OVS_OVN_NB_CONNECTION}"
            iniset "$VIRTIO_OVS_CONF" ovn nb_owner neutron
            ;;
        ovs)  # observe beside neutron's OVS agent: it owns br-int
            iniset "$VIRTIO_OVS_CONF" agent backend observe
            ;;
        *)
            iniset "$VIRTIO_OVS_CONF" ovs bridge_mappings "$VIRTIO_OVS_BRIDGE_MAPPINGS"
            iniset "$VIRTIO_OVS_CONF" agent backend "$VIRTIO_OVS_BACKEND"
            iniset "$VIRTIO_OVS_CONF" ovn ovn_nb_connection "$VIRTIO_OVS_OVN_NB_CONNECTION"
            create_virtio_ovs_bridges
            create_virtio_ovs_networks
            ;;
    esac
}

# Create a bridge unless it exists; mark it only if we created it.
function _virtio_ovs_add_bridge {
    local bridge=$1
    if ! _virtio_ovs_vsctl br-exists "$bridge"; then
        _virtio_ovs_vsctl add-br "$bridge" -- set Bridge "$bridge" \
            "datapath_type=$VIRTIO_OVS_DATAPATH_TYPE" fail_mode=secure \
            "external_ids:$VIRTIO_OVS_MARK=created"
    fi
}

function create_virtio_ovs_bridges {
    local mapping
    # With OVN, ovn-controller makes and owns br-int.
    if [[ "$VIRTIO_OVS_BACKEND" != "ovn" ]]; then
        _virtio_ovs_add_bridge "$VIRTIO_OVS_INTEGRATION_BRIDGE"
    fi
    for mapping in ${VIRTIO_OVS_BRIDGE_MAPPINGS//,/ }; do
        _virtio_ovs_add_bridge "${mapping#*:}"
    done
}

# VIRTIO_OVS_NETWORKS: "name:local name:flat:physnet name:vlan:physnet:segment"
function create_virtio_ovs_networks {
    local spec name type physnet segment args created=""
    for spec in $VIRTIO_OVS_NETWORKS; do
        IFS=: read -r name type physnet segment <<< "$spec"
        args=(net-create "$name" --type "$type")
        [[ -n "$physnet" ]] && args+=(--physnet "$physnet")
        [[ -n "$segment" ]] && args+=(--segment "$segment")
        if ! _virtio_ovs_ctl net-list --format json | grep -q "\"name\": \"$name\""; then
            _virtio_ovs_ctl "${args[@]}"
            created="$created $name"
        fi
    done
    if [[ -n "$created" ]]; then
        _virtio_ovs_vsctl set Open_vSwitch . \
            "external_ids:$VIRTIO_OVS_MARK-networks=\"${created# }\""
    fi
}

function start_virtio_ovs_agent {
    run_process virtio-ovs-agent \
        "$VIRTIO_OVS_BIN_DIR/virtio-ovs-agent --config-file $VIRTIO_OVS_CONF"
}

function stop_virtio_ovs_agent {
    stop_process virtio-ovs-agent
}

function _virtio_ovs_mark {
    _virtio_ovs_vsctl --if-exists get Open_vSwitch . "external_ids:$VIRTIO_OVS_MARK-$1" \
        2>/dev/null | tr -d '"'
}

function cleanup_virtio_ovs {
    local bridge name pages mount
    for name in $(_virtio_ovs_mark networks); do
        _virtio_ovs_ctl net-delete "$name" || true
    done
    for bridge in $(_virtio_ovs_vsctl --bare --columns=name find Bridge \
                    "external_ids:$VIRTIO_OVS_MARK=created"); do
        # The agent's patch port towards a provider bridge goes with it.
        _virtio_ovs_vsctl --if-exists del-port "int-$bridge"
        _virtio_ovs_vsctl --if-exists del-br "$bridge"
    done
    if [[ "$(_virtio_ovs_mark dpdk)" == "true" ]]; then
        _virtio_ovs_vsctl remove Open_vSwitch . other_config dpdk-init \
            dpdk-socket-mem dpdk-lcore-mask pmd-cpu-mask dpdk-extra
    fi
    mount=$(_virtio_ovs_mark mount)
    if [[ -n "$mount" ]] && mountpoint -q "$mount"; then
        sudo umount "$mount"
    fi
    pages=$(_virtio_ovs_mark hugepages)
    if [[ -n "$pages" ]]; then
        echo $(( $(cat /proc/sys/vm/nr_hugepages) - pages )) | \
            sudo tee /proc/sys/vm/nr_hugepages >/dev/null
    fi
    _virtio_ovs_vsctl remove Open_vSwitch . external_ids '"virtio-ovs:agent"' \
        "$VIRTIO_OVS_MARK-networks" "$VIRTIO_OVS_MARK-dpdk" \
        "$VIRTIO_OVS_MARK-mount" "$VIRTIO_OVS_MARK-hugepages"
    sudo rm -rf "$VIRTIO_OVS_CONF_DIR"
}

if is_service_enabled virtio-ovs-agent; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing virtio-ovs"
        install_virtio_ovs
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring virtio-ovs"
        configure_virtio_ovs
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting virtio-ovs-agent"
        start_virtio_ovs_agent
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_virtio_ovs_agent
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_virtio_ovs
    fi
fi
