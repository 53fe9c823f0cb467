//! The embedded descriptor set is what reflection serves: it must decode and hold both
//! services with every rpc.

use prost::Message;

#[test]
fn descriptor_set_lists_services_and_methods() {
    let fds = prost_types::FileDescriptorSet::decode(keel_proto::FILE_DESCRIPTOR_SET)
        .expect("embedded descriptor set decodes");
    let mut services: Vec<(String, Vec<String>)> = fds
        .file
        .iter()
        .filter(|f| f.package() == "keel.v1")
        .flat_map(|f| f.service.iter())
        .map(|s| {
            (
                format!("keel.v1.{}", s.name()),
                s.method.iter().map(|m| m.name().to_string()).collect(),
            )
        })
        .collect();
    services.sort();
    let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, keel_proto::SERVICE_NAMES);
    assert_eq!(services[0].1, ["Get", "Set", "Delete", "Scan", "Metrics"]);
    assert_eq!(
        services[1].1,
        ["Begin", "Get", "Scan", "Put", "Delete", "Commit", "Rollback"]
    );
}
