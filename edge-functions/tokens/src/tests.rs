use super::*;

const NOW: i64 = 1_800_000_000;

fn signer(kid: &str, byte: u8) -> Signer {
    Signer::from_seed(kid, [byte; 32])
}

fn keys(signers: &[&Signer]) -> KeySet {
    let jwks = serde_json::json!({
        "keys": signers.iter().map(|s| s.public_jwk()).collect::<Vec<_>>()
    });
    KeySet::from_jwks(&jwks.to_string()).unwrap()
}

fn policy() -> Policy {
    Policy {
        issuer: "https://edgeshop.example/auth".into(),
        audience: "edgeshop".into(),
        leeway_secs: 60,
    }
}

fn claims() -> Claims {
    Claims {
        iss: "https://edgeshop.example/auth".into(),
        aud: "edgeshop".into(),
        sub: "42".into(),
        iat: NOW,
        exp: NOW + 600,
        nbf: None,
        jti: "j-1".into(),
        sid: "s-1".into(),
        roles: vec!["vendor".into()],
    }
}

/// A token with an arbitrary header and claims, signed by `with`.
fn forge(header: serde_json::Value, claims: &serde_json::Value, with: &Signer) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    format!("{input}.{}", B64.encode(with.sign(input.as_bytes())))
}

fn header(alg: &str, typ: Option<&str>, kid: Option<&str>) -> serde_json::Value {
    let mut h = serde_json::json!({ "alg": alg });
    if let Some(t) = typ {
        h["typ"] = t.into();
    }
    if let Some(k) = kid {
        h["kid"] = k.into();
    }
    h
}

#[test]
fn a_token_verifies_with_its_key_and_gives_back_its_claims() {
    let k1 = signer("k1", 1);
    let token = sign(&k1, &claims());
    assert_eq!(verify(&token, &keys(&[&k1]), &policy(), NOW), Ok(claims()));
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "Ed25519", "typ": "at+jwt", "kid": "k1"})
    );
}

#[test]
fn the_bad_token_corpus_is_refused_every_time() {
    let k1 = signer("k1", 1);
    let k2 = signer("k2", 2);
    let set = keys(&[&k1, &k2]);
    let good = serde_json::to_value(claims()).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let typ = Some("at+jwt");

    // `alg: none` with no signature.
    let none = format!(
        "{}.{}.",
        B64.encode(header("none", typ, Some("k1")).to_string()),
        B64.encode(good.to_string())
    );
    // HS256 keyed with the public key: the classic algorithm confusion.
    let hs256 = {
        use hmac::Mac;
        let input = format!(
            "{}.{}",
            B64.encode(header("HS256", typ, Some("k1")).to_string()),
            B64.encode(good.to_string())
        );
        let public = B64.decode(k1.public_jwk()["x"].as_str().unwrap()).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let valid = sign(&k1, &claims());
    let (signed, sig) = valid.rsplit_once('.').unwrap();
    let mut altered = B64.decode(sig).unwrap();
    altered[10] ^= 1;
    let stranger = signer("k9", 9);

    let corpus: Vec<(&str, String, TokenError)> = vec![
        ("alg none", none, TokenError::WrongAlgorithm),
        (
            "HS256 with the public key",
            hs256,
            TokenError::WrongAlgorithm,
        ),
        (
            "EdDSA is not the pinned name",
            forge(header("EdDSA", typ, Some("k1")), &good, &k1),
            TokenError::WrongAlgorithm,
        ),
        (
            "kid of another key",
            forge(header("Ed25519", typ, Some("k2")), &good, &k1),
            TokenError::BadSignature,
        ),
        (
            "unknown kid",
            forge(header("Ed25519", typ, Some("k9")), &good, &stranger),
            TokenError::UnknownKey,
        ),
        (
            "no kid",
            forge(header("Ed25519", typ, None), &good, &k1),
            TokenError::UnknownKey,
        ),
        (
            "expired beyond the leeway",
            forge(
                header("Ed25519", typ, Some("k1")),
                &with(&|c| c["exp"] = (NOW - 61).into()),
                &k1,
            ),
            TokenError::Expired,
        ),
        (
            "nbf in the future",
            forge(
                header("Ed25519", typ, Some("k1")),
                &with(&|c| c["nbf"] = (NOW + 61).into()),
                &k1,
            ),
            TokenError::NotYetValid,
        ),
        (
            "issued in the future",
            forge(
                header("Ed25519", typ, Some("k1")),
                &with(&|c| c["iat"] = (NOW + 3600).into()),
                &k1,
            ),
            TokenError::IssuedInFuture,
        ),
        (
            "wrong iss",
            forge(
                header("Ed25519", typ, Some("k1")),
                &with(&|c| c["iss"] = "https://evil.example".into()),
                &k1,
            ),
            TokenError::WrongIssuer,
        ),
        (
            "wrong aud",
            forge(
                header("Ed25519", typ, Some("k1")),
                &with(&|c| c["aud"] = "payments".into()),
                &k1,
            ),
            TokenError::WrongAudience,
        ),
        (
            "wrong typ",
            forge(header("Ed25519", Some("JWT"), Some("k1")), &good, &k1),
            TokenError::WrongType,
        ),
        (
            "no typ",
            forge(header("Ed25519", None, Some("k1")), &good, &k1),
            TokenError::WrongType,
        ),
        (
            "critical extension",
            forge(
                serde_json::json!({"alg": "Ed25519", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}),
                &good,
                &k1,
            ),
            TokenError::UnknownCritical,
        ),
        (
            "truncated signature",
            format!("{signed}.{}", B64.encode(&B64.decode(sig).unwrap()[..60])),
            TokenError::BadSignature,
        ),
        (
            "altered signature",
            format!("{signed}.{}", B64.encode(&altered)),
            TokenError::BadSignature,
        ),
        (
            "claims swapped under the signature",
            format!(
                "{}.{}.{sig}",
                signed.split('.').next().unwrap(),
                B64.encode(with(&|c| c["sub"] = "1".into()).to_string())
            ),
            TokenError::BadSignature,
        ),
        ("two parts", signed.to_string(), TokenError::Malformed),
        ("four parts", format!("{valid}.x"), TokenError::Malformed),
        ("not base64", "a.b.c".to_string(), TokenError::Malformed),
        ("huge", "a".repeat(MAX_TOKEN_BYTES + 1), TokenError::TooLong),
    ];
    for (name, token, want) in corpus {
        assert_eq!(verify(&token, &set, &policy(), NOW), Err(want), "{name}");
    }
}

#[test]
fn every_single_character_change_is_refused() {
    let k1 = signer("k1", 1);
    let set = keys(&[&k1]);
    let token = sign(&k1, &claims());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for i in 0..token.len() {
        for &c in alphabet {
            let mut bytes = token.clone().into_bytes();
            if bytes[i] == c {
                continue;
            }
            bytes[i] = c;
            let changed = String::from_utf8(bytes).unwrap();
            assert!(
                verify(&changed, &set, &policy(), NOW).is_err(),
                "changing byte {i} to {:?} still verified",
                c as char
            );
        }
    }
}

#[test]
fn leeway_is_honoured_and_capped_at_a_minute() {
    let k1 = signer("k1", 1);
    let set = keys(&[&k1]);
    let token = sign(&k1, &claims());
    let exp = claims().exp;
    assert!(verify(&token, &set, &policy(), exp + 60).is_ok());
    assert_eq!(
        verify(&token, &set, &policy(), exp + 61),
        Err(TokenError::Expired)
    );
    let generous = Policy {
        leeway_secs: 3600,
        ..policy()
    };
    assert_eq!(
        verify(&token, &set, &generous, exp + 61),
        Err(TokenError::Expired)
    );
}

#[test]
fn rotation_accepts_both_keys_then_retires_the_old() {
    let old = signer("2026-10", 1);
    let new = signer("2026-11", 2);
    let old_token = sign(&old, &claims());
    let new_token = sign(&new, &claims());
    let both = keys(&[&old, &new]);
    assert!(verify(&old_token, &both, &policy(), NOW).is_ok());
    assert!(verify(&new_token, &both, &policy(), NOW).is_ok());
    let retired = keys(&[&new]);
    assert_eq!(
        verify(&old_token, &retired, &policy(), NOW),
        Err(TokenError::UnknownKey)
    );
    assert!(verify(&new_token, &retired, &policy(), NOW).is_ok());
}

#[test]
fn key_sets_refuse_private_foreign_and_duplicate_keys() {
    let k1 = signer("k1", 1);
    let mut private = k1.public_jwk();
    private["d"] = "AAAA".into();
    let mut p256 = k1.public_jwk();
    p256["crv"] = "P-256".into();
    let mut hs = k1.public_jwk();
    hs["alg"] = "HS256".into();
    let doc = |k: Vec<serde_json::Value>| serde_json::json!({ "keys": k }).to_string();
    assert_eq!(
        KeySet::from_jwks(&doc(vec![private])).unwrap_err(),
        KeyError::PrivateKey("k1".into())
    );
    assert_eq!(
        KeySet::from_jwks(&doc(vec![p256])).unwrap_err(),
        KeyError::BadKey("k1".into())
    );
    assert_eq!(
        KeySet::from_jwks(&doc(vec![hs])).unwrap_err(),
        KeyError::BadKey("k1".into())
    );
    assert_eq!(
        KeySet::from_jwks(&doc(vec![k1.public_jwk(), k1.public_jwk()])).unwrap_err(),
        KeyError::DuplicateKid("k1".into())
    );
    assert!(KeySet::from_jwks("{}").is_err());
    // What a key set publishes parses back to the same keys.
    let set = keys(&[&k1, &signer("k2", 2)]);
    let again = KeySet::from_jwks(&set.to_jwks().to_string()).unwrap();
    assert_eq!(again.kids().collect::<Vec<_>>(), ["k1", "k2"]);
}

#[test]
fn signing_secrets_round_trip_and_bad_ones_are_refused() {
    let k1 = signer("k1", 7);
    let again = Signer::from_secret(&k1.to_secret()).unwrap();
    assert_eq!(again.public_jwk(), k1.public_jwk());
    for bad in ["", "k1", ":AAAA", "k1:not-base64!", "k1:AAAA"] {
        assert_eq!(
            Signer::from_secret(bad).unwrap_err(),
            KeyError::BadSecret,
            "{bad:?}"
        );
    }
}

#[test]
fn a_libsql_server_token_is_an_eddsa_jwt_its_public_key_verifies() {
    let k1 = signer("k1", 1);
    let claims = serde_json::json!({ "a": "rw", "exp": NOW });
    let token = sign_jwt(&k1, &claims);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let part = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&B64.decode(parts[i]).unwrap()).unwrap()
    };
    assert_eq!(
        part(0),
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
    );
    assert_eq!(part(1), claims);
    // The public key alone checks it, as the server does.
    let public: [u8; 32] = B64.decode(k1.public_key()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let signature: [u8; 64] = B64.decode(parts[2]).unwrap().try_into().unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    use ed25519_dalek::Verifier as _;
    assert!(
        key.verify(
            input.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature)
        )
        .is_ok()
    );
    assert_ne!(k1.public_key(), signer("k2", 2).public_key());
}
