//! A casbin adapter over `platform.casbin_rule`, through `desk-db`.

use async_trait::async_trait;
use casbin::{Adapter, Filter, Model, error::AdapterError};
use desk_db::PlatformDb;
use desk_db::policy::PolicyRule;

pub(crate) struct PlatformAdapter {
    db: PlatformDb,
    filtered: bool,
}

impl PlatformAdapter {
    pub(crate) fn new(db: PlatformDb) -> Self {
        Self {
            db,
            filtered: false,
        }
    }
}

fn adapter_error(e: desk_core::DomainError) -> casbin::Error {
    casbin::Error::AdapterError(AdapterError(Box::new(e)))
}

fn rules(ptype: &str, rules: Vec<Vec<String>>) -> Vec<PolicyRule> {
    rules
        .into_iter()
        .map(|values| PolicyRule {
            ptype: ptype.to_owned(),
            values,
        })
        .collect()
}

fn section(ptype: &str) -> &str {
    if ptype.starts_with('g') { "g" } else { "p" }
}

#[async_trait]
impl Adapter for PlatformAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        self.filtered = false;
        for rule in self.db.policy_rules().await.map_err(adapter_error)? {
            if let Some(ast) = m
                .get_mut_model()
                .get_mut(section(&rule.ptype))
                .and_then(|s| s.get_mut(&rule.ptype))
            {
                ast.get_mut_policy().insert(rule.values);
            }
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        f: Filter<'a>,
    ) -> casbin::Result<()> {
        for rule in self.db.policy_rules().await.map_err(adapter_error)? {
            let sec = section(&rule.ptype);
            let wanted = if sec == "p" { &f.p } else { &f.g };
            let keep = wanted
                .iter()
                .enumerate()
                .all(|(i, w)| w.is_empty() || rule.values.get(i).is_some_and(|v| v == w));
            if !keep {
                self.filtered = true;
                continue;
            }
            if let Some(ast) = m
                .get_mut_model()
                .get_mut(sec)
                .and_then(|s| s.get_mut(&rule.ptype))
            {
                ast.get_mut_policy().insert(rule.values);
            }
        }
        Ok(())
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut all = Vec::new();
        for sec in ["p", "g"] {
            if let Some(asts) = m.get_model().get(sec) {
                for (ptype, ast) in asts {
                    all.extend(rules(ptype, ast.get_policy().iter().cloned().collect()));
                }
            }
        }
        self.db
            .replace_policy_rules(&all)
            .await
            .map_err(adapter_error)
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        self.filtered = false;
        self.db
            .replace_policy_rules(&[])
            .await
            .map_err(adapter_error)
    }

    fn is_filtered(&self) -> bool {
        self.filtered
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.db
            .insert_policy_rules(&rules(ptype, vec![rule]))
            .await
            .map_err(adapter_error)
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        r: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        self.db
            .insert_policy_rules(&rules(ptype, r))
            .await
            .map_err(adapter_error)
    }

    async fn remove_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.db
            .delete_policy_rules(&rules(ptype, vec![rule]))
            .await
            .map_err(adapter_error)
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        r: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        self.db
            .delete_policy_rules(&rules(ptype, r))
            .await
            .map_err(adapter_error)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        self.db
            .delete_policy_filtered(ptype, field_index, &field_values)
            .await
            .map_err(adapter_error)
    }
}
