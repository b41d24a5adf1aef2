//! The stack's URLs as the status reports them: the ingress or gateway host when there is
//! one, else the Services.

use super::*;

impl Stack<'_> {
    /// URLs of the stack, for the status.
    pub fn endpoints(&self) -> Endpoints {
        let spec = &self.cm.spec;
        let svc = |component: Component, port: i32| {
            format!(
                "http://{}.{}.svc:{port}/",
                self.child_name(component),
                self.namespace
            )
        };
        // The Ingress's host, else the route's first real host name (plain HTTP: TLS is
        // the Gateway's listeners' business, which the operator does not read).
        let host = spec
            .ingress
            .as_ref()
            .and_then(|i| i.host.as_deref().map(|h| (h, i.tls_secret_name.is_some())))
            .or_else(|| self.gateway_host().map(|h| (h, false)));
        let (page, api) = match host {
            Some((host, tls)) => {
                let scheme = if tls { "https" } else { "http" };
                (
                    Some(format!("{scheme}://{host}/")),
                    format!("{scheme}://{host}/products"),
                )
            }
            None => (
                spec.frontend.enabled.then(|| svc(Component::Frontend, 80)),
                svc(Component::Api, API_PORT),
            ),
        };
        Endpoints {
            page,
            api: Some(api),
            pg_admin: spec.pg_admin.enabled.then(|| svc(Component::PgAdmin, 80)),
            redis_commander: spec
                .redis_commander
                .enabled
                .then(|| svc(Component::RedisCommander, 80)),
        }
    }
}
