// Loads a PKCS#11 module through SunPKCS11, finds a private key on the token by its
// keystore alias, signs a file and writes the signature. Used by tests/clients/test_java.py.
//   java SignWithToken CONFIG PIN ALIAS ALGORITHM IN OUT
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.util.Collections;

public class SignWithToken {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: SignWithToken CONFIG PIN ALIAS ALGORITHM IN OUT");
            System.exit(2);
        }
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, args[1].toCharArray());
        System.out.println("provider: " + provider.getName());
        System.out.println("aliases: " + Collections.list(store.aliases()));
        if (!store.isKeyEntry(args[2])) {
            System.err.println("no key entry with alias " + args[2]);
            System.exit(1);
        }
        PrivateKey key = (PrivateKey) store.getKey(args[2], null);
        Signature signature = Signature.getInstance(args[3], provider);
        signature.initSign(key);
        signature.update(Files.readAllBytes(Path.of(args[4])));
        Files.write(Path.of(args[5]), signature.sign());
        System.out.println("signed with " + key.getAlgorithm() + " key " + args[2] + " using " + args[3]);
    }
}
