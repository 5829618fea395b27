//! Routing: which receivers an alert goes to. A tree of routes, each with label matchers and a
//! receiver, walked depth first as Alertmanager does: the deepest matching route wins, and
//! `continue` lets the following siblings match too.

use regex::Regex;
use vigil_tsdb::Labels;

use super::config::RouteConfig;

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    receiver: String,
    equal: Vec<(String, String)>,
    regex: Vec<(String, Regex)>,
    continue_matching: bool,
    children: Vec<Route>,
}

impl Route {
    /// Compiles a route tree; `receiver` is inherited by routes that name none.
    pub fn new(cfg: &RouteConfig, inherited: &str) -> Result<Route, String> {
        let receiver = cfg.receiver.clone().unwrap_or_else(|| inherited.to_owned());
        let regex = cfg
            .match_re
            .iter()
            .map(|(k, re)| {
                Regex::new(&format!("^(?:{re})$"))
                    .map(|r| (k.clone(), r))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        let children = cfg
            .routes
            .iter()
            .map(|c| Route::new(c, &receiver))
            .collect::<Result<_, _>>()?;
        Ok(Route {
            equal: cfg.matches.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            regex,
            continue_matching: cfg.continue_matching,
            children,
            receiver,
        })
    }

    /// A route that sends everything to each of `receivers`.
    pub fn fan_out(receivers: &[String]) -> Route {
        let routes = receivers
            .iter()
            .map(|r| Route {
                receiver: r.clone(),
                equal: Vec::new(),
                regex: Vec::new(),
                continue_matching: true,
                children: Vec::new(),
            })
            .collect();
        Route {
            receiver: String::new(),
            equal: Vec::new(),
            regex: Vec::new(),
            continue_matching: false,
            children: routes,
        }
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.equal.iter().all(|(k, v)| labels.get(k).unwrap_or("") == v)
            && self
                .regex
                .iter()
                .all(|(k, re)| re.is_match(labels.get(k).unwrap_or("")))
    }

    /// The receivers for an alert with `labels`, in order, without repeats.
    pub fn receivers(&self, labels: &Labels) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(labels, &mut out);
        let mut seen = Vec::new();
        out.retain(|r| {
            !r.is_empty() && !seen.contains(r) && {
                seen.push(r.clone());
                true
            }
        });
        out
    }

    /// Appends this route's matches; returns whether it matched.
    fn walk(&self, labels: &Labels, out: &mut Vec<String>) -> bool {
        if !self.matches(labels) {
            return false;
        }
        let mut child_matched = false;
        for c in &self.children {
            if c.walk(labels, out) {
                child_matched = true;
                if !c.continue_matching {
                    break;
                }
            }
        }
        if !child_matched {
            out.push(self.receiver.clone());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route tree as written in `vigil.yaml`.
    fn tree(yaml: &str) -> Route {
        let cfg: RouteConfig = serde_yaml_ng::from_str(yaml).expect("valid route YAML");
        Route::new(&cfg, "").expect("valid route")
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn deepest_match_wins_and_continue_fans_out() {
        let r = tree(
            "
receiver: default
routes:
  - match: { severity: page }
    receiver: oncall
    continue: true
    routes:
      - match_re: { service: payments|orders }
        receiver: payments-oncall
  - match: { team: search }
    receiver: search
  - match_re: { severity: page|ticket }
    receiver: tickets
",
        );
        assert_eq!(r.receivers(&labels(&[("severity", "info")])), vec!["default"]);
        assert_eq!(
            r.receivers(&labels(&[("severity", "page"), ("service", "users")])),
            vec!["oncall", "tickets"]
        );
        assert_eq!(
            r.receivers(&labels(&[("severity", "page"), ("service", "payments")])),
            vec!["payments-oncall", "tickets"]
        );
        assert_eq!(
            r.receivers(&labels(&[("team", "search"), ("severity", "ticket")])),
            vec!["search"]
        );
        assert_eq!(r.receivers(&labels(&[("severity", "ticket")])), vec!["tickets"]);
    }

    #[test]
    fn fan_out_reaches_everyone() {
        let r = Route::fan_out(&["a".into(), "b".into()]);
        assert_eq!(r.receivers(&labels(&[("x", "y")])), vec!["a", "b"]);
    }
}
