//! The simulated estate: services, their Kong routes, and the API operations behind them.

/// How an identifier in a simulated path looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Decimal, 5 to 8 digits.
    Numeric,
    /// A random UUID.
    Uuid,
    /// 24 hex digits (a MongoDB object id).
    Hex24,
}

/// One API operation: a method and a path pattern where `{id}` is replaced by an identifier.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path with `{id}` placeholders.
    pub pattern: &'static str,
    /// What the identifiers look like.
    pub id: IdKind,
    /// Share of the route's traffic.
    pub weight: f64,
    /// Median of `latencies.request` in milliseconds.
    pub median_ms: f64,
    /// Log-normal shape (standard deviation of the log).
    pub sigma: f64,
    /// Status of a successful call.
    pub ok_status: u16,
    /// Client and server errors: (status, probability).
    pub errors: &'static [(u16, f64)],
    /// Typical response size in bytes.
    pub bytes: u64,
}

/// A Kong route of a service.
#[derive(Debug, Clone)]
pub struct Route {
    /// Kong route name.
    pub name: &'static str,
    /// `route.paths` prefix.
    pub prefix: &'static str,
    /// Requests per second at the daily peak.
    pub peak_rps: f64,
    /// The operations on this route.
    pub endpoints: Vec<Endpoint>,
    /// Whether callers authenticate (a consumer is logged).
    pub authenticated: bool,
}

/// A service behind Kong.
#[derive(Debug, Clone)]
pub struct Service {
    /// Kong service name.
    pub name: &'static str,
    /// Its routes.
    pub routes: Vec<Route>,
}

/// The whole simulated estate.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Services.
    pub services: Vec<Service>,
}

/// Ordinary client errors: bad input, auth, not found, rate limits.
const CLIENT: &[(u16, f64)] = &[(400, 0.004), (401, 0.002), (404, 0.006), (429, 0.001)];
/// Occasional server errors. Healthy routes fail 0.025% to 0.04% of requests with a 5xx: a
/// third of what a 99.9% objective allows, as a team that keeps such an objective runs.
const SERVER: &[(u16, f64)] = &[(500, 0.0002), (502, 0.00005), (503, 0.00005), (504, 0.00005)];
const LOOKUP: &[(u16, f64)] = &[(404, 0.02), (401, 0.002), (500, 0.0002), (503, 0.00005)];
const WRITE: &[(u16, f64)] = &[
    (400, 0.01),
    (409, 0.002),
    (422, 0.004),
    (500, 0.0003),
    (502, 0.00005),
    (504, 0.00005),
];

fn ep(method: &'static str, pattern: &'static str, id: IdKind, weight: f64, median_ms: f64) -> Endpoint {
    let write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    Endpoint {
        method,
        pattern,
        id,
        weight,
        median_ms,
        sigma: 0.55,
        ok_status: if method == "POST" { 201 } else { 200 },
        errors: if write {
            WRITE
        } else if pattern.contains("{id}") {
            LOOKUP
        } else {
            CLIENT
        },
        bytes: if write { 600 } else { 4_000 },
    }
}

impl Default for Topology {
    /// A small ride-hailing and commerce estate: eight services, eleven routes, sixteen
    /// operations, from 2 to 40 requests per second each at peak.
    fn default() -> Self {
        use IdKind::*;
        let route = |name, prefix, peak_rps, authenticated, endpoints| Route {
            name,
            prefix,
            peak_rps,
            endpoints,
            authenticated,
        };
        let mut search = ep("GET", "/v1/search", Numeric, 1.0, 140.0);
        search.sigma = 0.7;
        search.errors = SERVER;
        let mut token = ep("POST", "/oauth2/token", Numeric, 1.0, 35.0);
        token.errors = CLIENT;
        Topology {
            services: vec![
                Service {
                    name: "orders",
                    routes: vec![route(
                        "orders-route",
                        "/v1/orders",
                        30.0,
                        true,
                        vec![
                            ep("GET", "/v1/orders/{id}", Numeric, 0.55, 45.0),
                            ep("POST", "/v1/orders", Numeric, 0.25, 120.0),
                            ep("GET", "/v1/orders/{id}/items", Numeric, 0.20, 60.0),
                        ],
                    )],
                },
                Service {
                    name: "payments",
                    routes: vec![
                        route(
                            "payments-route",
                            "/v2/payments",
                            18.0,
                            true,
                            vec![
                                ep("POST", "/v2/payments", Uuid, 0.6, 260.0),
                                ep("GET", "/v2/payments/{id}", Uuid, 0.4, 40.0),
                            ],
                        ),
                        route(
                            "refunds-route",
                            "/v2/refunds",
                            2.0,
                            true,
                            vec![ep("POST", "/v2/refunds", Uuid, 1.0, 310.0)],
                        ),
                    ],
                },
                Service {
                    name: "users",
                    routes: vec![
                        route(
                            "users-route",
                            "/v1/users",
                            25.0,
                            true,
                            vec![
                                ep("GET", "/v1/users/{id}", Numeric, 0.8, 25.0),
                                ep("PATCH", "/v1/users/{id}", Numeric, 0.2, 70.0),
                            ],
                        ),
                        route("auth-route", "/oauth2", 12.0, false, vec![token]),
                    ],
                },
                Service {
                    name: "catalog",
                    routes: vec![route(
                        "products-route",
                        "/v1/products",
                        40.0,
                        false,
                        vec![
                            ep("GET", "/v1/products/{id}", Hex24, 0.7, 30.0),
                            ep("GET", "/v1/products", Numeric, 0.3, 90.0),
                        ],
                    )],
                },
                Service {
                    name: "search",
                    routes: vec![route("search-route", "/v1/search", 25.0, false, vec![search])],
                },
                Service {
                    name: "notifications",
                    routes: vec![route(
                        "notify-route",
                        "/v1/notifications",
                        8.0,
                        true,
                        vec![ep("POST", "/v1/notifications", Numeric, 1.0, 55.0)],
                    )],
                },
                Service {
                    name: "inventory",
                    routes: vec![route(
                        "stock-route",
                        "/v1/stock",
                        10.0,
                        true,
                        vec![ep("GET", "/v1/stock/{id}", Numeric, 1.0, 20.0)],
                    )],
                },
                Service {
                    name: "drivers",
                    routes: vec![route(
                        "locations-route",
                        "/v1/locations",
                        20.0,
                        true,
                        vec![ep("POST", "/v1/locations/{id}", Numeric, 1.0, 15.0)],
                    )],
                },
            ],
        }
    }
}

impl Topology {
    /// Every (service, route) pair.
    pub fn routes(&self) -> impl Iterator<Item = (&Service, &Route)> {
        self.services.iter().flat_map(|s| s.routes.iter().map(move |r| (s, r)))
    }

    /// A larger estate for scenarios: `copies` of the default one, each service renamed
    /// (`orders-2`) and each route's peak rate scaled by a seeded factor, so that rates spread
    /// from a few requests a minute to tens a second. One route in five is a quiet one (0.03 to
    /// 0.1 requests/s at peak).
    pub fn estate(copies: usize, seed: u64) -> Topology {
        let mut rng = fastrand::Rng::with_seed(seed);
        let base = Topology::default();
        let mut services = Vec::new();
        for copy in 0..copies {
            for s in &base.services {
                let name: &'static str = if copy == 0 {
                    s.name
                } else {
                    Box::leak(format!("{}-{}", s.name, copy + 1).into_boxed_str())
                };
                let routes = s
                    .routes
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.peak_rps = if rng.f64() < 0.2 {
                            0.03 + 0.07 * rng.f64()
                        } else {
                            // Log-uniform between a tenth and twice the default rate.
                            r.peak_rps * 0.1 * 20f64.powf(rng.f64())
                        };
                        r
                    })
                    .collect();
                services.push(Service { name, routes });
            }
        }
        Topology { services }
    }

    /// Sum of peak request rates.
    pub fn peak_rps(&self) -> f64 {
        self.routes().map(|(_, r)| r.peak_rps).sum()
    }
}
