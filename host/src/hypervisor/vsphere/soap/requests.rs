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

/// `PropertyCollector.RetrievePropertiesEx` of some properties of one object.
pub(super) fn retrieve_properties(
    property_collector: &str,
    object_type: &str,
    object: &str,
    paths: &[&str],
) -> String {
    let path_set: String = paths
        .iter()
        .map(|path| format!("<pathSet>{}</pathSet>", escape(*path)))
        .collect();
    envelope(&format!(
        concat!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25">"#,
            r#"<_this type="PropertyCollector">{collector}</_this>"#,
            r#"<specSet><propSet><type>{ty}</type><all>false</all>{path_set}</propSet>"#,
            r#"<objectSet><obj type="{ty}">{object}</obj><skip>false</skip></objectSet></specSet>"#,
            r#"<options></options></RetrievePropertiesEx>"#
        ),
        collector = escape(property_collector),
        ty = escape(object_type),
        path_set = path_set,
        object = escape(object)
    ))
}

/// `VirtualMachine.ResetVM_Task`.
pub(super) fn reset_vm(vm: &str) -> String {
    envelope(&format!(
        r#"<ResetVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this></ResetVM_Task>"#,
        escape(vm)
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::xml;
    use super::*;

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
            reset_vm("vm-1"),
        ] {
            let root = xml::parse(&request).unwrap();
            assert_eq!(root.name, "Envelope");
            assert!(root.child("Body").unwrap().children.len() == 1);
        }
    }
}
