//! TLS to PostgreSQL: a throwaway cluster serving a certificate that a CA
//! made in the test signed; the store connects to it verified, refuses it
//! under another CA, and connects in the clear when told to.

use omegi_store::postgres::{Database, PgConfig, Throwaway};
use omegi_store::Project;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

#[test]
fn connections_are_verified_against_the_ca_given_or_refused() {
    let authority = ca("Omegi test CA");
    let other = ca("Someone else's CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &authority)
        .unwrap();
    let cluster = Throwaway::start_tls(&cert.pem(), &key.serialize_pem())
        .unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)));
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, authority.pem()).unwrap();
    std::fs::write(&other_file, other.pem()).unwrap();
    let url = cluster.url_of("postgres");

    let verified = Database::connect(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ))
    .unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)));
    assert!(verified.encrypted().unwrap());
    verified
        .accounts()
        .put_project(&Project::new("shop"))
        .unwrap();
    assert_eq!(verified.accounts().projects().unwrap().len(), 1);

    // The CA may also be given in the configuration.
    let configured =
        Database::connect_with(PgConfig::new(format!("{url}?sslmode=require")).root_cert(&ca_file))
            .unwrap();
    assert!(configured.encrypted().unwrap());

    let refused = Database::connect(&format!(
        "{url}?sslmode=require&sslrootcert={}",
        other_file.display()
    ))
    .expect_err("a certificate of another CA");
    let chain = omegi_core::ErrorChain(&refused).to_string();
    assert!(chain.contains("certificate"), "{chain}");

    let clear = Database::connect(&format!("{url}?sslmode=disable")).unwrap();
    assert!(!clear.encrypted().unwrap());
}
