// A national system in Java, with the JDK only: it dates and signs a document with the
// protocol's signature profile, submits it to its node over mutual TLS and verifies the
// node's signed receipt. Run it with the JDK's single-file launcher (JDK 11 or later):
//
//   java ImiClient.java https://gateway.example.no:8443 NO-HELSEDIR.p12 PASSWORD \
//        node-ca.pem NO request.xml
//
// NO-HELSEDIR.p12 holds the national system's key and certificate (make it with
// `openssl pkcs12 -export`, see docs/client.md); node-ca.pem is the node's CA certificate;
// NO is the node's id. Exit status 0: accepted, and the receipt verified; 1: refused (the
// node's error code is printed); 2: usage; 3: the receipt did not verify.
//
// The signature profile (docs/signatures.md): one enveloped signature, the root's last
// child; one Reference URI="" with the enveloped-signature and exclusive C14N transforms;
// exclusive C14N for SignedInfo; SHA-256; ECDSA-SHA256 for EC keys, RSA-SHA256 for RSA
// keys; KeyInfo with exactly one X509Data holding the signing certificate.

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.xml.XMLConstants;
import javax.xml.crypto.AlgorithmMethod;
import javax.xml.crypto.KeySelector;
import javax.xml.crypto.KeySelectorException;
import javax.xml.crypto.KeySelectorResult;
import javax.xml.crypto.XMLCryptoContext;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignatureMethod;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.keyinfo.X509Data;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

public class ImiClient {
    static final String NS = "urn:imi-gateway:protocol:1";
    static final String ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    static final String RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: java ImiClient.java NODE_URL KEYSTORE.p12 PASSWORD NODE_CA.pem NODE_ID DOCUMENT.xml");
            System.exit(2);
        }
        String nodeUrl = args[0];
        char[] password = args[2].toCharArray();
        String nodeId = args[4];
        KeyStore keyStore = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[1])) {
            keyStore.load(in, password);
        }
        String alias = Collections.list(keyStore.aliases()).get(0);
        PrivateKey key = (PrivateKey) keyStore.getKey(alias, password);
        X509Certificate certificate = (X509Certificate) keyStore.getCertificate(alias);
        X509Certificate nodeCa;
        try (InputStream in = new FileInputStream(args[3])) {
            nodeCa = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }

        // 1. Date the document (the node's replay window is 300 s), then sign it.
        Document document = parse(Files.readAllBytes(Path.of(args[5])));
        Element created = (Element) document.getDocumentElement()
                .getElementsByTagNameNS(NS, "Header").item(0);
        created = (Element) created.getElementsByTagNameNS(NS, "Created").item(0);
        created.setTextContent(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        byte[] signed = serialize(sign(document, key, certificate));

        // 2. Submit it over mutual TLS: our certificate as client certificate, the node's CA
        //    as the only trusted root.
        HttpClient client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .sslContext(tls(keyStore, password, nodeCa))
                .build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(nodeUrl + "/api/v1/documents"))
                .header("Content-Type", "application/xml")
                .POST(HttpRequest.BodyPublishers.ofByteArray(signed))
                .build();
        HttpResponse<byte[]> response = client.send(request, HttpResponse.BodyHandlers.ofByteArray());
        Document answer = parse(response.body());
        if (response.statusCode() != 200) {
            String code = answer.getElementsByTagNameNS(NS, "Code").item(0).getTextContent();
            System.out.println("refused: HTTP " + response.statusCode() + " " + code);
            System.exit(1);
        }

        // 3. Verify the receipt: signed by node NODE_ID with a certificate of its CA, and
        //    acknowledging exactly the bytes we sent.
        NodeList signatures = answer.getElementsByTagNameNS(XMLSignature.XMLNS, "Signature");
        DOMValidateContext context = new DOMValidateContext(new NodeKeySelector(nodeCa, nodeId), signatures.item(0));
        context.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
        XMLSignature signature = XMLSignatureFactory.getInstance("DOM").unmarshalXMLSignature(context);
        if (!signature.validate(context)) {
            System.out.println("receipt signature INVALID");
            System.exit(3);
        }
        Element item = (Element) answer.getElementsByTagNameNS(NS, "Item").item(0);
        String digest = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(signed));
        if (!digest.equals(item.getAttribute("sha256"))) {
            System.out.println("receipt names other bytes");
            System.exit(3);
        }
        System.out.println("receipt verified: " + item.getAttribute("messageId") + " "
                + item.getAttribute("status") + " sha256 " + digest);
    }

    /** A namespace-aware parse that refuses DOCTYPEs (the node refuses them too). */
    static Document parse(byte[] data) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return factory.newDocumentBuilder().parse(new ByteArrayInputStream(data));
    }

    /** The enveloped signature of the protocol's profile, appended as the root's last child. */
    static Document sign(Document document, PrivateKey key, X509Certificate certificate) throws Exception {
        XMLSignatureFactory factory = XMLSignatureFactory.getInstance("DOM");
        Reference reference = factory.newReference(
                "",
                factory.newDigestMethod(DigestMethod.SHA256, null),
                List.of(
                        factory.newTransform(Transform.ENVELOPED, (TransformParameterSpec) null),
                        factory.newTransform(CanonicalizationMethod.EXCLUSIVE, (TransformParameterSpec) null)),
                null,
                null);
        String method = "EC".equals(key.getAlgorithm()) ? ECDSA_SHA256 : RSA_SHA256;
        SignedInfo signedInfo = factory.newSignedInfo(
                factory.newCanonicalizationMethod(CanonicalizationMethod.EXCLUSIVE, (C14NMethodParameterSpec) null),
                factory.newSignatureMethod(method, null),
                List.of(reference));
        KeyInfoFactory keyInfos = factory.getKeyInfoFactory();
        KeyInfo keyInfo = keyInfos.newKeyInfo(List.of(keyInfos.newX509Data(List.of(certificate))));
        DOMSignContext context = new DOMSignContext(key, document.getDocumentElement());
        context.setDefaultNamespacePrefix("ds");
        factory.newXMLSignature(signedInfo, keyInfo).sign(context);
        return document;
    }

    /** UTF-8 bytes with an XML declaration, without re-indenting: these bytes are what is signed. */
    static byte[] serialize(Document document) throws Exception {
        var transformer = TransformerFactory.newInstance().newTransformer();
        transformer.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        transformer.transform(new DOMSource(document), new StreamResult(out));
        return out.toByteArray();
    }

    /** TLS with our key and certificate as client certificate, trusting only the node's CA. */
    static SSLContext tls(KeyStore keyStore, char[] password, X509Certificate nodeCa) throws Exception {
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(keyStore, password);
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("node-ca", nodeCa);
        TrustManagerFactory trusted = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trusted.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys.getKeyManagers(), trusted.getTrustManagers(), null);
        return context;
    }

    /**
     * Accepts only the certificate in the signature's KeyInfo that the node's CA issued to the
     * node itself (its subjectAltName URI urn:imi-gateway:node:NODE_ID), within its validity:
     * the CA also issued every national system's certificate, and none of them may sign a receipt.
     */
    static final class NodeKeySelector extends KeySelector {
        private final X509Certificate ca;
        private final String nodeUri;

        NodeKeySelector(X509Certificate ca, String nodeId) {
            this.ca = ca;
            this.nodeUri = "urn:imi-gateway:node:" + nodeId;
        }

        @Override
        public KeySelectorResult select(KeyInfo keyInfo, Purpose purpose, AlgorithmMethod method,
                XMLCryptoContext context) throws KeySelectorException {
            if (keyInfo == null || keyInfo.getContent().size() != 1
                    || !(keyInfo.getContent().get(0) instanceof X509Data data)
                    || data.getContent().size() != 1
                    || !(data.getContent().get(0) instanceof X509Certificate certificate)) {
                throw new KeySelectorException("KeyInfo must hold exactly one certificate");
            }
            try {
                certificate.verify(ca.getPublicKey());
                certificate.checkValidity();
                boolean isNode = certificate.getSubjectAlternativeNames() != null
                        && certificate.getSubjectAlternativeNames().stream()
                                .anyMatch(name -> nodeUri.equals(name.get(1)));
                if (!isNode) {
                    throw new KeySelectorException("the receipt is not signed by " + nodeUri);
                }
            } catch (KeySelectorException e) {
                throw e;
            } catch (Exception e) {
                throw new KeySelectorException("the receipt's certificate is not the node's: " + e, e);
            }
            Key key = certificate.getPublicKey();
            return () -> key;
        }
    }
}
