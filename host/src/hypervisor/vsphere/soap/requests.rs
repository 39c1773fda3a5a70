//! The vim25 requests medic sends, one small template per method.
//!
//! Every value written into the XML goes through `quick_xml::escape::escape`,
//! so a password such as `a<b&c` arrives intact and cannot break the envelope.

use quick_xml::escape::escape;

/// Wraps a method element in a SOAP 1.1 envelope.
fn envelope(body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/""#,
            r#" xmlns:xsd="http://www.w3.org/2001/XMLSchema""#,
            r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            r#"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
        ),
        body = body
    )
}

/// `ServiceInstance.RetrieveServiceContent`: where the managers live.
pub(super) fn retrieve_service_content() -> String {
    envelope(concat!(
        r#"<RetrieveServiceContent xmlns="urn:vim25">"#,
        r#"<_this type="ServiceInstance">ServiceInstance</_this>"#,
        r#"</RetrieveServiceContent>"#
    ))
}

/// `SessionManager.Login`.
pub(super) fn login(session_manager: &str, username: &str, password: &str) -> String {
    envelope(&format!(
        r#"<Login xmlns="urn:vim25"><_this type="SessionManager">{}</_this><userName>{}</userName><password>{}</password></Login>"#,
        escape(session_manager),
        escape(username),
        escape(password)
    ))
}

/// `SessionManager.Logout`.
pub(super) fn logout(session_manager: &str) -> String {
    envelope(&format!(
        r#"<Logout xmlns="urn:vim25"><_this type="SessionManager">{}</_this></Logout>"#,
        escape(session_manager)
    ))
}

/// `SearchIndex.FindByUuid` for a VM by BIOS uuid (not instance uuid).
pub(super) fn find_by_uuid(search_index: &str, uuid: &str) -> String {
    envelope(&format!(
        r#"<FindByUuid xmlns="urn:vim25"><_this type="SearchIndex">{}</_this><uuid>{}</uuid><vmSearch>true</vmSearch><instanceUuid>false</instanceUuid></FindByUuid>"#,
        escape(search_index),
        escape(uuid)
    ))
}

/// `SearchIndex.FindByInventoryPath`.
pub(super) fn find_by_inventory_path(search_index: &str, path: &str) -> String {
    envelope(&format!(
        r#"<FindByInventoryPath xmlns="urn:vim25"><_this type="SearchIndex">{}</_this><inventoryPath>{}</inventoryPath></FindByInventoryPath>"#,
        escape(search_index),
        escape(path)
    ))
}

/// The `propSet`s of a property filter: for each managed object type, the
/// property paths to read.
fn prop_sets(specs: &[(&str, &[&str])]) -> String {
    specs
        .iter()
        .map(|(object_type, paths)| {
            let path_set: String = paths
                .iter()
                .map(|path| format!("<pathSet>{}</pathSet>", escape(*path)))
                .collect();
            format!(
                "<propSet><type>{}</type><all>false</all>{path_set}</propSet>",
                escape(*object_type)
            )
        })
        .collect()
}

/// `PropertyCollector.RetrievePropertiesEx` of some properties of one object.
pub(super) fn retrieve_properties(
    property_collector: &str,
    object_type: &str,
    object: &str,
    paths: &[&str],
) -> String {
    envelope(&format!(
        concat!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25">"#,
            r#"<_this type="PropertyCollector">{collector}</_this>"#,
            r#"<specSet>{prop_sets}"#,
            r#"<objectSet><obj type="{ty}">{object}</obj><skip>false</skip></objectSet></specSet>"#,
            r#"<options></options></RetrievePropertiesEx>"#
        ),
        collector = escape(property_collector),
        prop_sets = prop_sets(&[(object_type, paths)]),
        ty = escape(object_type),
        object = escape(object)
    ))
}

/// `PropertyCollector.RetrievePropertiesEx` over the objects of a
/// container view: for each type in `specs`, its listed properties.
pub(super) fn retrieve_view(
    property_collector: &str,
    view: &str,
    specs: &[(&str, &[&str])],
) -> String {
    envelope(&format!(
        concat!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25">"#,
            r#"<_this type="PropertyCollector">{collector}</_this>"#,
            r#"<specSet>{prop_sets}"#,
            r#"<objectSet><obj type="ContainerView">{view}</obj><skip>true</skip>"#,
            r#"<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type>"#,
            r#"<path>view</path><skip>false</skip></selectSet></objectSet></specSet>"#,
            r#"<options></options></RetrievePropertiesEx>"#
        ),
        collector = escape(property_collector),
        prop_sets = prop_sets(specs),
        view = escape(view)
    ))
}

/// `PropertyCollector.ContinueRetrievePropertiesEx`: the next page of a
/// retrieval that answered with a `token`.
pub(super) fn continue_retrieve(property_collector: &str, token: &str) -> String {
    envelope(&format!(
        r#"<ContinueRetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">{}</_this><token>{}</token></ContinueRetrievePropertiesEx>"#,
        escape(property_collector),
        escape(token)
    ))
}

/// `ViewManager.CreateContainerView` of every object of `types` under `container`.
pub(super) fn create_container_view(view_manager: &str, container: &str, types: &[&str]) -> String {
    let types: String = types
        .iter()
        .map(|ty| format!("<type>{}</type>", escape(*ty)))
        .collect();
    envelope(&format!(
        r#"<CreateContainerView xmlns="urn:vim25"><_this type="ViewManager">{}</_this><container type="Folder">{}</container>{types}<recursive>true</recursive></CreateContainerView>"#,
        escape(view_manager),
        escape(container)
    ))
}

/// `View.DestroyView`.
pub(super) fn destroy_view(view: &str) -> String {
    envelope(&format!(
        r#"<DestroyView xmlns="urn:vim25"><_this type="ContainerView">{}</_this></DestroyView>"#,
        escape(view)
    ))
}

/// A method of `VirtualMachine` that takes no argument besides the VM:
/// `ResetVM_Task`, `PowerOnVM_Task`, `PowerOffVM_Task`, `ShutdownGuest`,
/// `Destroy_Task`.
pub(super) fn vm_method(method: &str, vm: &str) -> String {
    envelope(&format!(
        r#"<{method} xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this></{method}>"#,
        escape(vm)
    ))
}

/// `Task.CancelTask`.
pub(super) fn cancel_task(task: &str) -> String {
    envelope(&format!(
        r#"<CancelTask xmlns="urn:vim25"><_this type="Task">{}</_this></CancelTask>"#,
        escape(task)
    ))
}

/// `VirtualMachine.CloneVM_Task` of `vm` as `name` into `folder` and
/// resource `pool`, left powered off and not a template.
pub(super) fn clone_vm(vm: &str, folder: &str, name: &str, pool: &str) -> String {
    envelope(&format!(
        concat!(
            r#"<CloneVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{vm}</_this>"#,
            r#"<folder type="Folder">{folder}</folder><name>{name}</name>"#,
            r#"<spec><location><pool type="ResourcePool">{pool}</pool></location>"#,
            r#"<template>false</template><powerOn>false</powerOn></spec></CloneVM_Task>"#
        ),
        vm = escape(vm),
        folder = escape(folder),
        name = escape(name),
        pool = escape(pool)
    ))
}

/// What a guest customization sets: a Linux guest's host name and domain,
/// and for each network card a fixed address or DHCP.
pub(super) struct Customization<'a> {
    /// The host name's first label.
    pub host_name: &'a str,
    /// The DNS domain (`LinuxPrep` requires one).
    pub domain: &'a str,
    /// The first card's fixed IPv4 address, netmask and gateway; DHCP when `None`.
    pub fixed: Option<(String, String, Option<String>)>,
    /// How many network cards the VM has (the spec must name each).
    pub cards: usize,
}

/// `VirtualMachine.CustomizeVM_Task` with a `CustomizationSpec` of
/// `LinuxPrep` identity and one adapter mapping per network card.
pub(super) fn customize_vm(vm: &str, customization: &Customization<'_>) -> String {
    let adapters: String = (0..customization.cards)
        .map(|card| match (&customization.fixed, card) {
            (Some((address, netmask, gateway)), 0) => format!(
                concat!(
                    r#"<nicSettingMap><adapter><ip xsi:type="CustomizationFixedIp">"#,
                    r#"<ipAddress>{}</ipAddress></ip><subnetMask>{}</subnetMask>{}"#,
                    r#"</adapter></nicSettingMap>"#
                ),
                escape(address.as_str()),
                escape(netmask.as_str()),
                gateway
                    .as_deref()
                    .map(|g| format!("<gateway>{}</gateway>", escape(g)))
                    .unwrap_or_default()
            ),
            _ => concat!(
                r#"<nicSettingMap><adapter><ip xsi:type="CustomizationDhcpIpGenerator"></ip>"#,
                r#"</adapter></nicSettingMap>"#
            )
            .to_owned(),
        })
        .collect();
    envelope(&format!(
        concat!(
            r#"<CustomizeVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{vm}</_this>"#,
            r#"<spec><identity xsi:type="CustomizationLinuxPrep">"#,
            r#"<hostName xsi:type="CustomizationFixedName"><name>{host}</name></hostName>"#,
            r#"<domain>{domain}</domain></identity>"#,
            r#"<globalIPSettings></globalIPSettings>{adapters}</spec></CustomizeVM_Task>"#
        ),
        vm = escape(vm),
        host = escape(customization.host_name),
        domain = escape(customization.domain),
        adapters = adapters
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hypervisor::xml;

    #[test]
    fn login_escapes_the_password() {
        let request = login("SessionManager", "me", r#"a<b&c"d'"#);
        assert!(request.contains("<password>a&lt;b&amp;c&quot;d&apos;</password>"));
        let parsed = xml::parse(&request).unwrap();
        let password = parsed
            .path(&["Body", "Login", "password"])
            .unwrap()
            .value()
            .to_string();
        assert_eq!(password, r#"a<b&c"d'"#);
    }

    #[test]
    fn requests_are_well_formed() {
        for request in [
            retrieve_service_content(),
            logout("SessionManager"),
            find_by_uuid("SearchIndex", "x"),
            find_by_inventory_path("SearchIndex", "/DC0/vm/a&b"),
            retrieve_properties(
                "pc",
                "VirtualMachine",
                "vm-1",
                &["name", "runtime.powerState"],
            ),
            vm_method("ResetVM_Task", "vm-1"),
            retrieve_view("pc", "session[1]view", &[("VirtualMachine", &["name"])]),
            continue_retrieve("pc", "1"),
            create_container_view("vm", "group-d1", &["VirtualMachine", "HostSystem"]),
            destroy_view("session[1]view"),
            cancel_task("task-1"),
            clone_vm("vm-1", "group-v3", "web <1>", "resgroup-9"),
            customize_vm(
                "vm-1",
                &Customization {
                    host_name: "web",
                    domain: "example.com",
                    fixed: Some(("10.0.0.2".into(), "255.255.255.0".into(), None)),
                    cards: 2,
                },
            ),
        ] {
            let root = xml::parse(&request).unwrap();
            assert_eq!(root.name, "Envelope");
            assert!(root.child("Body").unwrap().children.len() == 1);
        }
    }

    #[test]
    fn customization_names_every_card_and_fixes_the_first() {
        let request = customize_vm(
            "vm-1",
            &Customization {
                host_name: "web",
                domain: "example.com",
                fixed: Some((
                    "10.0.0.2".into(),
                    "255.255.255.0".into(),
                    Some("10.0.0.1".into()),
                )),
                cards: 2,
            },
        );
        let root = xml::parse(&request).unwrap();
        let spec = root.path(&["Body", "CustomizeVM_Task", "spec"]).unwrap();
        let maps: Vec<_> = spec.children_named("nicSettingMap").collect();
        assert_eq!(maps.len(), 2);
        let first = maps[0].child("adapter").unwrap();
        assert_eq!(
            first.child("ip").unwrap().xsi_type.as_deref(),
            Some("CustomizationFixedIp")
        );
        assert_eq!(
            first.path(&["ip", "ipAddress"]).unwrap().value(),
            "10.0.0.2"
        );
        assert_eq!(first.child("gateway").unwrap().value(), "10.0.0.1");
        assert_eq!(
            maps[1]
                .path(&["adapter", "ip"])
                .unwrap()
                .xsi_type
                .as_deref(),
            Some("CustomizationDhcpIpGenerator")
        );
        assert_eq!(
            spec.path(&["identity", "hostName", "name"])
                .unwrap()
                .value(),
            "web"
        );
    }
}
