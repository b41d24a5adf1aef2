//! The whole desired state of one `CacheMe`: every child of every component, listed in
//! one function so what a CacheMe creates and deletes reads top to bottom.

use super::*;

/// Everything the operator wants in the namespace for one `CacheMe`.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The CloudNativePG `Cluster`, applied first (see [`CNPG_CLUSTERS`]).
    pub cloudnativepg: Option<DynamicObject>,
    /// The generated Secrets, created once (never applied: see `SecretPlan`).
    pub secrets: Vec<SecretPlan>,
    /// Every other child, in apply order (the order of [`ChildKind`], then the order
    /// `desired` lists them in).
    pub children: Vec<Child>,
    pub absent: Vec<Absent>,
}

/// Placeholder written instead of a password by [`Desired::manifests`].
pub const PASSWORD_PLACEHOLDER: &str = "generated-at-creation";

impl Desired {
    fn push(&mut self, child: impl Into<Child>) {
        self.children.push(child.into());
    }

    /// Every object as JSON, Secrets with a placeholder password: what
    /// `cacheme-operator render` prints and what the schema tests validate.
    pub fn manifests(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        if let Some(cluster) = &self.cloudnativepg {
            out.push(serde_json::to_value(cluster)?);
        }
        // ConfigMaps, then the Secrets, then the rest: the order `render` always printed.
        let (config_maps, rest): (Vec<&Child>, Vec<&Child>) = self
            .children
            .iter()
            .partition(|c| c.kind() == ChildKind::ConfigMap);
        for child in config_maps {
            out.push(child.to_json()?);
        }
        for plan in &self.secrets {
            out.push(serde_json::to_value(
                plan.build(PASSWORD_PLACEHOLDER.into()),
            )?);
        }
        for child in rest {
            out.push(child.to_json()?);
        }
        Ok(out)
    }
}

impl Stack<'_> {
    /// The whole desired state.
    pub fn desired(&self) -> Result<Desired> {
        let spec = &self.cm.spec;
        let mut d = Desired::default();
        let absent = |kind, name| Absent { kind, name };

        // CloudNativePG's Cluster replaces the managed PostgreSQL (whose Deployment,
        // Service and NetworkPolicy are then absent below). Never deleted by the
        // operator: like the claim, it holds the data.
        d.cloudnativepg = self.cloudnativepg_cluster();

        // API, always on.
        d.push(self.api_deployment()?);
        d.push(self.api_service());
        match self.api_pdb() {
            Some(pdb) => d.push(pdb),
            None => d.absent.push(absent(
                ChildKind::PodDisruptionBudget,
                self.child_name(Component::Api),
            )),
        }
        match self.seed_config_map() {
            Some(cm) => d.push(cm),
            None => d
                .absent
                .push(absent(ChildKind::ConfigMap, self.seed_config_map_name())),
        }

        // The page.
        let frontend = self.child_name(Component::Frontend);
        if spec.frontend.enabled {
            d.push(self.frontend_deployment());
            d.push(self.frontend_service());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, frontend.clone()));
            d.absent.push(absent(ChildKind::Service, frontend));
        }

        // The admin token: writes and cache clears need it (the API refuses them
        // without). A referenced Secret is the user's; a generated one stays
        // (owned by the CacheMe) when a reference replaces it.
        if spec.api.admin_token_secret_ref.is_none() {
            d.secrets.push(self.secret_plan(Component::Api));
        }
        match self.api_network_policy() {
            Some(np) => d.push(np),
            None => d.absent.push(absent(
                ChildKind::NetworkPolicy,
                self.child_name(Component::Api),
            )),
        }

        // Stores.
        for (component, managed) in [
            (Component::Postgres, self.postgres_managed()),
            (Component::Redis, self.redis_managed()),
        ] {
            let name = self.child_name(component);
            if managed {
                d.secrets.push(self.secret_plan(component));
                if let Some(pvc) = self.pvc(component) {
                    d.push(pvc);
                }
                d.push(self.store_service(component));
                d.push(match component {
                    Component::Postgres => self.postgres_deployment(),
                    _ => self.redis_deployment(),
                });
                d.push(self.store_network_policy(component));
            } else {
                d.absent.push(absent(ChildKind::Deployment, name.clone()));
                d.absent.push(absent(ChildKind::Service, name.clone()));
                d.absent.push(absent(ChildKind::NetworkPolicy, name));
            }
        }

        // Admin tools.
        let pgadmin = self.child_name(Component::PgAdmin);
        if spec.pg_admin.enabled {
            d.secrets.push(self.secret_plan(Component::PgAdmin));
            d.push(self.pgadmin_config_map()?);
            d.push(self.tool_service(Component::PgAdmin));
            d.push(self.pgadmin_deployment());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, pgadmin.clone()));
            d.absent.push(absent(ChildKind::Service, pgadmin.clone()));
            d.absent.push(absent(ChildKind::ConfigMap, pgadmin));
        }
        let commander = self.child_name(Component::RedisCommander);
        if spec.redis_commander.enabled {
            d.push(self.tool_service(Component::RedisCommander));
            d.push(self.redis_commander_deployment());
        } else {
            d.absent
                .push(absent(ChildKind::Deployment, commander.clone()));
            d.absent.push(absent(ChildKind::Service, commander));
        }

        match self.ingress() {
            Some(ingress) => d.push(ingress),
            None => d.absent.push(absent(ChildKind::Ingress, self.name.clone())),
        }
        match self.httproute()? {
            Some(route) => d.push(Child::HttpRoute(route)),
            None => d
                .absent
                .push(absent(ChildKind::HttpRoute, self.name.clone())),
        }
        match self.api_hpa() {
            Some(hpa) => d.push(hpa),
            None => d.absent.push(absent(
                ChildKind::HorizontalPodAutoscaler,
                self.child_name(Component::Api),
            )),
        }
        // Apply order: by kind (stable, so within a kind as listed above).
        d.children.sort_by_key(Child::kind);
        Ok(d)
    }
}
