//! Rule family: image. A DaemonSet pulls its image once per node, at different times (new nodes,
//! evictions, restarts on a node without the image cached). A reference that can move (no tag,
//! which means `latest`, or `latest` itself) lets nodes run different builds of the same agent
//! without any rollout; a pinned digest is the only reference that cannot move.

use super::{ContainerRef, Ctx};
use crate::catalog::image::{DIGEST, LATEST};

/// A parsed image reference: the tag and digest, if any (`registry:5000/repo:tag@sha256:...`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ImageRef<'a> {
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Splits an image reference as the container runtime reads it: the digest follows `@`; the
/// tag follows the last `:` after the last `/` (a `:` before it is a registry port).
pub(crate) fn parse_image(image: &str) -> ImageRef<'_> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.rsplit_once(':').map(|(_, t)| t);
    ImageRef { tag, digest }
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let require_digest = ctx.policy.security().require_image_digest;
    for c in ctx.containers() {
        let Some(image) = c.container.image.as_deref() else {
            continue;
        };
        if image.trim().is_empty() {
            continue;
        }
        let r = parse_image(image);
        if r.digest.is_some() {
            continue;
        }
        match r.tag {
            None | Some("") => report(
                ctx,
                LATEST,
                &c,
                image,
                "has no tag, so it means :latest: nodes that pull at different times run different builds; pin a version tag or a digest",
            ),
            Some("latest") => report(
                ctx,
                LATEST,
                &c,
                image,
                "uses the latest tag: nodes that pull at different times run different builds; pin a version tag or a digest",
            ),
            Some(_) if require_digest => report(
                ctx,
                DIGEST,
                &c,
                image,
                "has no digest, which the policy requires (a tag can be moved); pin it as image:tag@sha256:...",
            ),
            Some(_) => {}
        }
    }
}

fn report(ctx: &mut Ctx<'_>, rule: &'static str, c: &ContainerRef<'_>, image: &str, what: &str) {
    ctx.report(
        rule,
        Some(image),
        c.pointer("/image"),
        format!("{}: image {image:?} {what}", c.label()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use serde_json::json;

    #[test]
    fn parses_references_like_the_runtime() {
        let cases = [
            ("nginx", None, None),
            ("nginx:1.25", Some("1.25"), None),
            ("nginx:latest", Some("latest"), None),
            ("docker.io/library/nginx", None, None),
            // A registry port is not a tag.
            ("localhost:5000/agent", None, None),
            ("localhost:5000/agent:2", Some("2"), None),
            ("quay.io/a/b@sha256:abc", None, Some("sha256:abc")),
            (
                "quay.io/a/b:1.0@sha256:abc",
                Some("1.0"),
                Some("sha256:abc"),
            ),
            ("registry:5000/a/b:v1-debian", Some("v1-debian"), None),
        ];
        for (image, tag, digest) in cases {
            assert_eq!(parse_image(image), ImageRef { tag, digest }, "{image}");
        }
    }

    fn image_findings(images: &[&str], policy: &Policy) -> Vec<(&'static str, String)> {
        let mut v = clean();
        let c = v["spec"]["template"]["spec"]["containers"][0].clone();
        let containers: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let mut c = c.clone();
                c["name"] = json!(format!("c{i}"));
                c["image"] = json!(img);
                c
            })
            .collect();
        v["spec"]["template"]["spec"]["containers"] = json!(containers);
        eval_with(v, policy)
            .findings
            .into_iter()
            .filter(|f| f.rule.starts_with("image-"))
            .map(|f| (f.rule, f.path))
            .collect()
    }

    #[test]
    fn table() {
        let digest = Policy::from_yaml("security:\n  requireImageDigest: true\n", "p").unwrap();
        let p0 = "/spec/template/spec/containers/0/image".to_string();
        // (image, findings by default, findings with requireImageDigest)
        let cases: [(&str, Vec<&str>, Vec<&str>); 8] = [
            ("agent", vec![LATEST], vec![LATEST]),
            ("agent:latest", vec![LATEST], vec![LATEST]),
            ("localhost:5000/agent", vec![LATEST], vec![LATEST]),
            ("agent:1.2.3", vec![], vec![DIGEST]),
            // Tags are case-sensitive: "Latest" is just another tag.
            ("agent:Latest", vec![], vec![DIGEST]),
            ("agent@sha256:0123", vec![], vec![]),
            ("agent:latest@sha256:0123", vec![], vec![]),
            ("agent:1.2.3@sha256:0123", vec![], vec![]),
        ];
        for (image, default, strict) in cases {
            let got = image_findings(&[image], &Policy::default());
            assert_eq!(
                got,
                default.iter().map(|r| (*r, p0.clone())).collect::<Vec<_>>(),
                "{image}"
            );
            let got = image_findings(&[image], &digest);
            assert_eq!(
                got,
                strict.iter().map(|r| (*r, p0.clone())).collect::<Vec<_>>(),
                "{image} (digest required)"
            );
        }
    }

    #[test]
    fn every_container_and_init_container_is_checked_and_named() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]);
        let e = eval(v);
        let f: Vec<_> = e.findings.iter().filter(|f| f.rule == LATEST).collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "/spec/template/spec/initContainers/0/image");
        assert!(
            f[0].message
                .starts_with("init container \"init\": image \"busybox\" has no tag"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn exempt_by_image_and_annotation() {
        let p = Policy::from_yaml(
            "exemptions:\n  - reason: vendor only publishes latest\n    images: ['vendor.io/*']\n    rules: [image-tag-latest]\n",
            "p",
        )
        .unwrap();
        assert!(image_findings(&["vendor.io/agent"], &p).is_empty());
        assert_eq!(image_findings(&["other.io/agent"], &p).len(), 1);
        let mut v = clean();
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent");
        v["metadata"]["annotations"] = json!({"daemonset-guard.dev/exempt": "image"});
        let p = Policy::from_yaml("allowAnnotationExemptions: true\n", "p").unwrap();
        assert!(eval_with(v, &p).findings.iter().all(|f| f.rule != LATEST));
    }
}
