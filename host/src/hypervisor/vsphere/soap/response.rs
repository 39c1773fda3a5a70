//! Reading vim25 answers: the returned values, or the fault and its kind.

use std::collections::HashMap;

use crate::hypervisor::{ErrorKind, HypervisorError};

use crate::hypervisor::xml::{self, Element};

/// A SOAP fault: the vim25 fault type (from the detail's `xsi:type`) and the server's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// vim25 fault type, e.g. "InvalidLogin"; `None` when the fault has no detail.
    pub name: Option<String>,
    /// The `faultstring` (or localized message).
    pub message: String,
}

/// What a SOAP body held.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The method's response element (e.g. `LoginResponse`).
    Response(Element),
    /// A fault.
    Fault(Fault),
}

/// Reads an envelope into the response element or the fault.
pub(crate) fn read_answer(text: &str) -> Result<Answer, String> {
    let root = xml::parse(text)?;
    if root.name != "Envelope" {
        return Err(format!("not a SOAP envelope (root element {})", root.name));
    }
    let first = root
        .child("Body")
        .and_then(|body| body.children.first())
        .ok_or("SOAP envelope without a body")?;
    if first.name == "Fault" {
        let name = first
            .child("detail")
            .and_then(|detail| detail.children.first())
            .map(fault_type);
        let message = first
            .child("faultstring")
            .map(|s| s.value().to_string())
            .unwrap_or_default();
        return Ok(Answer::Fault(Fault { name, message }));
    }
    Ok(Answer::Response(first.clone()))
}

/// The vim25 type of a fault element: its `xsi:type`, else its name without "Fault".
fn fault_type(element: &Element) -> String {
    element.xsi_type.clone().unwrap_or_else(|| {
        element
            .name
            .strip_suffix("Fault")
            .unwrap_or(&element.name)
            .to_string()
    })
}

/// The kind a vim25 fault type stands for, if it is one medic knows.
pub(crate) fn fault_kind(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "InvalidLogin" | "NotAuthenticated" | "NoPermission" => ErrorKind::BadCredentials,
        "ManagedObjectNotFound" => ErrorKind::NotFound,
        "InvalidPowerState" => ErrorKind::WrongPowerState,
        "DuplicateName" | "AlreadyExists" | "FileAlreadyExists" => ErrorKind::AlreadyExists,
        // Server-side conditions that pass: a host reconnecting, a task
        // already running on the VM, vpxd busy.
        "HostCommunication" | "HostNotConnected" | "HostNotReachable" | "TaskInProgress"
        | "SystemError" | "RequestCanceled" => ErrorKind::ServerError,
        _ => return None,
    })
}

/// Turns a fault into an error; `what` names the request.
pub(crate) fn fault_error(fault: &Fault, what: &str) -> HypervisorError {
    match &fault.name {
        Some(name) => HypervisorError::new(
            fault_kind(name).unwrap_or(ErrorKind::Failed),
            format!("{what}: {name}: {}", fault.message),
        ),
        None => HypervisorError::new(
            ErrorKind::Protocol,
            format!("{what}: SOAP fault without detail: {}", fault.message),
        ),
    }
}

/// The text of the `returnval` element, which must be present.
pub(crate) fn returnval<'a>(response: &'a Element, what: &str) -> Result<&'a str, HypervisorError> {
    response
        .child("returnval")
        .map(Element::value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            HypervisorError::new(
                ErrorKind::Protocol,
                format!("{what}: answer without a returnval"),
            )
        })
}

/// The properties of the one object a `RetrievePropertiesEx` asked for, by path.
///
/// A property the server could not read (`missingSet`) becomes the error of
/// its fault: vCenter reports an expired session there rather than as a fault.
pub(crate) fn properties(
    response: &Element,
    what: &str,
) -> Result<HashMap<String, Element>, HypervisorError> {
    let Some(object) = response.path(&["returnval", "objects"]) else {
        return Err(HypervisorError::new(
            ErrorKind::NotFound,
            format!("{what}: the server returned no such object"),
        ));
    };
    object_properties(object, what)
}

/// One object of a `RetrievePropertiesEx` answer.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    /// Its managed object type (`VirtualMachine`).
    pub kind: String,
    /// Its managed object id (`vm-42`).
    pub id: String,
    /// Its properties, by path.
    pub properties: HashMap<String, Element>,
}

/// Every object of a `RetrievePropertiesEx` (or `Continue...`) answer, and
/// the token of the next page if there is one. An answer without
/// `returnval` is an empty result.
pub(crate) fn objects(
    response: &Element,
    what: &str,
) -> Result<(Vec<Object>, Option<String>), HypervisorError> {
    let Some(returnval) = response.child("returnval") else {
        return Ok((Vec::new(), None));
    };
    let objects = returnval
        .children_named("objects")
        .map(|object| {
            let obj = object.child("obj");
            Ok(Object {
                kind: obj.and_then(|o| o.ref_type.clone()).unwrap_or_default(),
                id: obj.map(|o| o.value().to_owned()).unwrap_or_default(),
                properties: object_properties(object, what)?,
            })
        })
        .collect::<Result<Vec<_>, HypervisorError>>()?;
    let token = returnval
        .child("token")
        .map(|t| t.value().to_owned())
        .filter(|t| !t.is_empty());
    Ok((objects, token))
}

/// The properties of one `objects` element, by path; a `missingSet` is
/// the error of its fault.
fn object_properties(
    object: &Element,
    what: &str,
) -> Result<HashMap<String, Element>, HypervisorError> {
    if let Some(missing) = object.child("missingSet") {
        let path = missing.child("path").map(Element::value).unwrap_or("?");
        let fault = Fault {
            name: missing.path(&["fault", "fault"]).map(fault_type),
            message: missing
                .path(&["fault", "localizedMessage"])
                .map(|m| m.value().to_string())
                .unwrap_or_default(),
        };
        return Err(fault_error(&fault, &format!("{what} (property {path})")));
    }
    let mut found = HashMap::new();
    for prop in object.children_named("propSet") {
        if let (Some(name), Some(val)) = (prop.child("name"), prop.child("val")) {
            found.insert(name.value().to_string(), val.clone());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const INVALID_LOGIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Login failure</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

    const NOT_AUTHENTICATED_PROPERTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="VirtualMachine">vm-57</obj><missingSet><path>name</path><fault><fault xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="NotAuthenticated"><object type="VirtualMachine">vm-57</object><privilegeId>System.Read</privilegeId></fault></fault></missingSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;

    const TASK_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="Task">task-68</obj><propSet><name>info.state</name><val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="TaskInfoState">error</val></propSet><propSet><name>info.error</name><val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="LocalizedMethodFault"><fault XMLSchema-instance:type="InvalidPowerState"><requestedState>poweredOff</requestedState><existingState>poweredOff</existingState></fault><localizedMessage>*types.InvalidPowerState</localizedMessage></val></propSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn reads_a_fault_by_xsi_type() {
        let Answer::Fault(fault) = read_answer(INVALID_LOGIN).unwrap() else {
            panic!("expected a fault");
        };
        assert_eq!(fault.name.as_deref(), Some("InvalidLogin"));
        assert_eq!(fault.message, "Login failure");
        let err = fault_error(&fault, "Login");
        assert_eq!(err.kind, ErrorKind::BadCredentials);
    }

    #[test]
    fn fault_name_falls_back_to_element_name() {
        let text = INVALID_LOGIN.replace(r#" xsi:type="InvalidLogin""#, "");
        let Answer::Fault(fault) = read_answer(&text).unwrap() else {
            panic!("expected a fault");
        };
        assert_eq!(fault.name.as_deref(), Some("InvalidLogin"));
    }

    #[test]
    fn missing_property_becomes_its_fault() {
        let Answer::Response(response) = read_answer(NOT_AUTHENTICATED_PROPERTY).unwrap() else {
            panic!("expected a response");
        };
        let err = properties(&response, "read").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadCredentials);
        assert!(err.message.contains("NotAuthenticated"), "{}", err.message);
    }

    #[test]
    fn reads_every_object_and_the_token() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>7</token><objects><obj type="VirtualMachine">vm-1</obj><propSet><name>name</name><val>a</val></propSet></objects><objects><obj type="HostSystem">host-2</obj><propSet><name>parent</name><val type="ClusterComputeResource">domain-c3</val></propSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;
        let Answer::Response(response) = read_answer(text).unwrap() else {
            panic!("expected a response");
        };
        let (found, token) = objects(&response, "read").unwrap();
        assert_eq!(token.as_deref(), Some("7"));
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].kind.as_str(), found[0].id.as_str()),
            ("VirtualMachine", "vm-1")
        );
        assert_eq!(found[0].properties["name"].value(), "a");
        let parent = &found[1].properties["parent"];
        assert_eq!(parent.ref_type.as_deref(), Some("ClusterComputeResource"));
        let Answer::Response(empty) = read_answer(&text.replace(
            &text[text.find("<returnval>").unwrap()
                ..text.find("</RetrievePropertiesExResponse>").unwrap()],
            "",
        ))
        .unwrap() else {
            panic!("expected a response");
        };
        assert!(objects(&empty, "read").unwrap().0.is_empty());
    }

    #[test]
    fn reads_task_error_fault() {
        let Answer::Response(response) = read_answer(TASK_ERROR).unwrap() else {
            panic!("expected a response");
        };
        let props = properties(&response, "read").unwrap();
        assert_eq!(props["info.state"].value(), "error");
        let fault = props["info.error"].child("fault").unwrap();
        assert_eq!(fault.xsi_type.as_deref(), Some("InvalidPowerState"));
    }

    #[test]
    fn unknown_fault_is_failed_and_detailless_is_protocol() {
        let named = Fault {
            name: Some("DiskFull".into()),
            message: "x".into(),
        };
        assert_eq!(fault_error(&named, "w").kind, ErrorKind::Failed);
        let bare = Fault {
            name: None,
            message: "x".into(),
        };
        assert_eq!(fault_error(&bare, "w").kind, ErrorKind::Protocol);
        assert_eq!(
            fault_kind("HostCommunication"),
            Some(ErrorKind::ServerError)
        );
    }

    mod any_answer {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of SOAP a broken or hostile vCenter could send, in any
        /// order and nesting, so the parser is driven past its first check.
        fn soapish() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
                "</soapenv:Envelope>",
                "<soapenv:Body>",
                "</soapenv:Body>",
                "<soapenv:Fault>",
                "</soapenv:Fault>",
                "<faultstring>",
                "</faultstring>",
                "<detail>",
                "</detail>",
                "<returnval type=\"VirtualMachine\">",
                "</returnval>",
                "<x xsi:type=\"\">",
                "</x>",
                "&amp;",
                "&#xD800;",
                "<![CDATA[",
                "]]>",
                "<?xml version=\"1.0\"?>",
                "text",
                "<",
                ">",
            ]);
            prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever comes back, reading it ends in an answer or an
            /// error that says why, never a panic.
            #[test]
            fn any_text_gives_an_answer_or_an_error(text in "\\PC{0,300}") {
                if let Err(why) = read_answer(&text) {
                    prop_assert!(!why.is_empty());
                }
            }

            #[test]
            fn any_soapish_text_gives_an_answer_or_an_error(text in soapish()) {
                if let Err(why) = read_answer(&text) {
                    prop_assert!(!why.is_empty());
                }
            }
        }
    }
}
