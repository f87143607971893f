package org.fieldcap.app

import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import java.security.KeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import org.fieldcap.app.portable.AesGcmKeyProtector
import org.fieldcap.core.KeyProtector

/**
 * The Android Keystore AES-256-GCM key that wraps the Fieldcap device secret. The key is
 * generated inside the Keystore (StrongBox when the phone has one) and never leaves it; the
 * wrapping code itself is [AesGcmKeyProtector], which the JVM tests run with a software key.
 */
object KeystoreKeys {
    private const val ALIAS = "fieldcap-device-key-wrap"
    private const val PROVIDER = "AndroidKeyStore"

    fun protector(): KeyProtector =
        // The Keystore chooses the IV itself (randomized encryption is required).
        AesGcmKeyProtector("android-keystore-aes-gcm", ::key, callerSuppliesIv = false)

    @Synchronized
    private fun key(): SecretKey {
        val ks = KeyStore.getInstance(PROVIDER).apply { load(null) }
        (ks.getEntry(ALIAS, null) as? KeyStore.SecretKeyEntry)?.let { return it.secretKey }
        return try {
            generate(strongBox = Build.VERSION.SDK_INT >= 28)
        } catch (e: StrongBoxUnavailableException) {
            generate(strongBox = false)
        }
    }

    private fun generate(strongBox: Boolean): SecretKey {
        val spec = KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .setRandomizedEncryptionRequired(true)
            .apply { if (strongBox && Build.VERSION.SDK_INT >= 28) setIsStrongBoxBacked(true) }
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER).run {
            init(spec)
            generateKey()
        }
    }
}
